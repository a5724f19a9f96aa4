"""Evaluation: COCO-style metrics, confusion matrix, latency and a self-contained HTML report.

``evaluate_detections`` computes the numbers (the trainer uses it for per-epoch validation
mAP); ``evaluate_model`` runs a model over a dataset and writes the report directory.
"""

from boxtune.evaluate.metrics import ClassMetrics, EvaluationResult, evaluate_detections
from boxtune.evaluate.model import evaluate_model

__all__ = ["ClassMetrics", "EvaluationResult", "evaluate_detections", "evaluate_model"]

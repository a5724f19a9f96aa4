"""One pass over the validation data: losses, predictions in original pixels, COCO mAP."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from boxtune.detections import Detections
from boxtune.engines.base import Detector
from boxtune.labels import LabelMap

# A detection scoring below this is noise to a user: a model with none above it detects nothing.
USEFUL_SCORE = 0.1


@dataclass
class ValidationResult:
    loss: float
    localization: float
    classification: float
    map: float | None
    map50: float | None
    detections: int  # every prediction returned
    useful_detections: int  # predictions scoring at least USEFUL_SCORE
    ground_truth_boxes: int
    evaluation: Any  # boxtune.evaluate.EvaluationResult

    def metric(self, name: str) -> float | None:
        return {
            "map": self.map,
            "map50": self.map50,
            "loss": self.loss,
            "localization_loss": self.localization,
        }[name]

    def problem(self) -> str | None:
        """Why this model looks useless, or None when it detects something."""
        if self.ground_truth_boxes == 0:
            return None
        if self.detections == 0:
            return "the model predicts no boxes at all on the validation images"
        if self.useful_detections == 0:
            return (
                f"every validation prediction scores below {USEFUL_SCORE} "
                "(the model detects nothing useful)"
            )
        if self.map50 is not None and self.map50 < 0.01:
            return f"validation mAP50 is {self.map50:.4f}: the boxes miss the objects"
        return None


def to_original_pixels(detections: Detections, input_size: int, orig_size: Any) -> Detections:
    """Scale boxes from the S x S model input back to the image's own (h, w) pixels."""
    height, width = (float(v) for v in orig_size)
    boxes = detections.boxes.astype(np.float32).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] * (width / input_size), 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] * (height / input_size), 0, height)
    return Detections(boxes, detections.classes, detections.scores)


def validate(
    detector: Detector,
    batches: Iterable[tuple[Any, list[dict]]],
    dataset: Any,
    label_map: LabelMap,
    score_threshold: float,
) -> ValidationResult:
    from boxtune.evaluate import evaluate_detections

    sums = {"loss": 0.0, "localization": 0.0, "classification": 0.0}
    seen = 0
    predictions: dict[int, Detections] = {}
    for images, targets in batches:
        count = len(targets)
        losses = detector.validation_losses(images, targets)
        for key in sums:
            sums[key] += float(losses[key]) * count
        seen += count
        for target, found in zip(targets, detector.predict_batch(images), strict=True):
            image_id = int(target["image_id"])
            predictions[image_id] = to_original_pixels(
                found, detector.image_size, target["orig_size"]
            )
    evaluation = evaluate_detections(dataset, predictions, label_map, score_threshold)
    all_scores = [d.scores for d in predictions.values()]
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0, np.float32)
    mean = {key: value / max(seen, 1) for key, value in sums.items()}
    return ValidationResult(
        loss=mean["loss"],
        localization=mean["localization"],
        classification=mean["classification"],
        map=evaluation.map,
        map50=evaluation.map50,
        detections=int(scores.size),
        useful_detections=int((scores >= USEFUL_SCORE).sum()),
        ground_truth_boxes=len(dataset.annotations),
        evaluation=evaluation,
    )

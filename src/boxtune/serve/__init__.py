"""Inference: the in-process predictor, the managed-platform-compatible HTTP endpoint and batch
prediction. ``boxtune.serve.predictor.Predictor`` is the entry point for Python callers."""

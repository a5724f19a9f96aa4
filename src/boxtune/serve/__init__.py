"""Inference: the in-process predictor, the managed-platform-compatible HTTP endpoint and batch
prediction. ``boxtune.serve.predictor.InProcessPredictor`` is the entry point for Python callers
(``boxtune.Predictor`` is the managed SDK's HTTP client of a running endpoint)."""

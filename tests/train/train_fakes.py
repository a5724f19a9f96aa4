"""A scriptable Detector and Engine: the trainer's logic tested without a network's cost.

The trainer only sees the Detector interface, so these fakes exercise exactly what a real
engine would see, in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from boxtune.detections import Detections
from boxtune.engines.base import Detector, Runner
from boxtune.labels import LabelMap

FAKE_WEIGHTS = "fake-weights.json"


class FakeDetector(Detector):
    """Losses come from functions of the number of steps done; predictions from ``predict``.

    ``weights`` changes with every step, so tests can tell which step's model was exported.
    """

    engine = "fake"
    family = "fake"

    def __init__(
        self,
        label_map: LabelMap,
        image_size: int,
        *,
        model_id: str = "pytorch-od1-efficientdet-lite0-320",
        train_loss: Callable[[int], float] = lambda step: 1.0 / (1 + step),
        val_loss: Callable[[int], float] = lambda step: 1.0 / (1 + step),
        predict: str = "good",
        interrupt_at_step: int | None = None,
    ):
        self.label_map = label_map
        self.image_size = image_size
        self.model_id = model_id
        self.train_loss = train_loss
        self.val_loss = val_loss
        self.predict = predict
        self.interrupt_at_step = interrupt_at_step
        self.steps = 0
        self.weights = 0.0
        self.optimizer_state: dict[str, Any] | None = None
        self.head_only: bool | None = None
        self.hyperparameters: Any = None
        self.learning_rates: list[float] = []
        self.batches: list[list[int]] = []
        self.reinitialized = False
        self._last_targets: list[dict] = []

    def set_trainable(self, head_only: bool) -> None:
        self.head_only = head_only

    def configure_optimizer(self, hyperparameters: Any) -> list[str]:
        self.hyperparameters = hyperparameters
        self.optimizer_state = {"updates": 0}
        return ["momentum"] if hyperparameters.optimizer == "adam" else []

    def set_learning_rate(self, lr: float) -> None:
        self.learning_rates.append(lr)

    def train_step(self, images: Any, targets: list[dict]) -> dict[str, float]:
        if self.interrupt_at_step is not None and self.steps == self.interrupt_at_step:
            self.interrupt_at_step = None
            raise KeyboardInterrupt
        loss = float(self.train_loss(self.steps))
        self.steps += 1
        self.weights += 1.0
        assert self.optimizer_state is not None
        self.optimizer_state["updates"] += 1
        self.batches.append([int(t["image_id"]) for t in targets])
        return {"loss": loss, "localization": loss * 0.25, "classification": loss * 0.75}

    def validation_losses(self, images: Any, targets: list[dict]) -> dict[str, float]:
        self._last_targets = targets
        loss = float(self.val_loss(self.steps))
        return {"loss": loss, "localization": loss * 0.4, "classification": loss * 0.6}

    def predict_batch(self, images: Any) -> list[Detections]:
        """ "good": the ground truth of the batch (the trainer asks for validation losses of the
        same batch first); "weak": the same boxes with useless scores; "empty": nothing."""
        out = []
        for target in self._last_targets[: len(images)]:
            if self.predict == "empty":
                out.append(Detections.empty())
                continue
            boxes = np.asarray(target["boxes"], np.float32).reshape(-1, 4)
            score = 0.9 if self.predict == "good" else 0.01
            out.append(
                Detections(
                    boxes,
                    np.asarray(target["labels"], np.int64),
                    np.full(len(boxes), score, np.float32),
                )
            )
        return out

    def reinitialize_head(self) -> None:
        self.reinitialized = True

    def save_checkpoint(self, path: Path, extra: dict) -> None:
        payload = {
            "steps": self.steps,
            "weights": self.weights,
            "optimizer": self.optimizer_state,
            "extra": extra,
        }
        Path(path).write_text(json.dumps(payload))

    def load_checkpoint(self, path: Path) -> dict:
        payload = json.loads(Path(path).read_text())
        self.steps, self.weights = payload["steps"], payload["weights"]
        self.optimizer_state = payload["optimizer"]
        return payload["extra"]

    def export(self, directory: Path) -> list[str]:
        (Path(directory) / FAKE_WEIGHTS).write_text(json.dumps({"weights": self.weights}))
        return [FAKE_WEIGHTS]

    def runner(self, backend: str = "torch") -> Runner:
        raise NotImplementedError


class FakeEngine:
    """Builds FakeDetectors; ``created`` keeps each one for the test to inspect."""

    def __init__(self, **detector_options: Any):
        self.detector_options = detector_options
        self.created: list[FakeDetector] = []
        self.create_calls: list[dict] = []
        self.seeds: list[int] = []

    def seed(self, seed: int) -> None:
        self.seeds.append(seed)

    def create(self, spec, label_map, init="pretrained", reinitialize_head=True, device="cpu"):
        self.create_calls.append(
            {
                "init": init,
                "reinitialize_head": reinitialize_head,
                "device": device,
                "image_size": spec.image_size,
            }
        )
        detector = FakeDetector(
            label_map, spec.image_size, model_id=spec.model_id, **self.detector_options
        )
        self.created.append(detector)
        return detector

    def load_detector(self, artifact, device="cpu"):
        detector = FakeDetector(
            artifact.label_map,
            artifact.image_size,
            model_id=artifact.model_id,
            **self.detector_options,
        )
        weights = json.loads((artifact.directory / FAKE_WEIGHTS).read_text())
        detector.weights = weights["weights"]
        self.created.append(detector)
        return detector


def install(monkeypatch, engine: FakeEngine) -> FakeEngine:
    """Make ``boxtune.engines.get_engine`` return ``engine`` for every engine name."""
    import boxtune.engines

    monkeypatch.setattr(boxtune.engines, "get_engine", lambda name: engine)
    return engine

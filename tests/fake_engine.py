"""A scriptable Engine and Detector: the trainer's logic tested without a network's cost.

The fake implements the whole :class:`boxtune.engines.base.Engine` interface, and the engine
contract suite (tests/engines/test_engine_contract.py) runs the same checks on it as on the
torch engine, so the trainer's tests see exactly what a real engine would show them.

Its "network" is two numbers: ``weights`` (the head: +1 per step, so tests can tell which
step's model was exported) and ``body`` (+1 per step unless head_only). Its checkpoints are
directories (``last/``), as a TensorFlow checkpoint (index + shards) is, so the trainer's
handling of directory checkpoints is tested too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from boxtune.detections import Detections
from boxtune.engines.base import CheckpointRole, Detector, Engine, OptimizerSettings, Runner
from boxtune.errors import HyperparameterError, ModelError
from boxtune.labels import LabelMap

FAKE_WEIGHTS = "fake-weights.json"
PRETRAINED_HEAD = 0.5  # the value a "pretrained" head starts from
_STATE_FILE = "state.json"


class FakeRunner(Runner):
    backend = "fake"

    def __init__(self, label_map: LabelMap, image_size: int):
        self.label_map = label_map
        self.image_size = image_size

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections.empty() for _ in images]


class FakeDetector(Detector):
    """Losses come from functions of the number of steps done; predictions from ``predict``."""

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
        self.body = 0.0
        self.optimizer_state: dict[str, Any] | None = None
        self.head_only: bool | None = None
        self.hyperparameters: Any = None
        self.learning_rates: list[float] = []
        self.batches: list[list[int]] = []
        self.reinitialized = False
        self._last_targets: list[dict] = []

    def architecture(self) -> dict[str, Any]:
        return {"name": "fake", "image_size": self.image_size}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return 1 if trainable_only and self.head_only else 2

    def set_trainable(self, head_only: bool) -> None:
        self.head_only = head_only
        self.optimizer_state = None

    def configure_optimizer(self, settings: OptimizerSettings) -> list[str]:
        self.hyperparameters = settings
        self.optimizer_state = {"updates": 0}
        return ["momentum"] if settings.optimizer == "adam" else []

    def set_learning_rate(self, lr: float) -> None:
        self.learning_rates.append(lr)

    def _check_batch(self, images: np.ndarray, targets: list[dict]) -> None:
        expected = (len(targets), self.image_size, self.image_size, 3)
        if images.dtype != np.uint8 or images.shape != expected:
            raise AssertionError(f"batch {images.dtype} {images.shape}, expected uint8 {expected}")

    def train_step(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        self._check_batch(images, targets)
        if self.optimizer_state is None:
            raise ModelError("no optimizer configured", hint="call configure_optimizer first")
        if self.interrupt_at_step is not None and self.steps == self.interrupt_at_step:
            self.interrupt_at_step = None
            raise KeyboardInterrupt
        loss = float(self.train_loss(self.steps))
        self.steps += 1
        self.weights += 1.0
        if not self.head_only:
            self.body += 1.0
        self.optimizer_state["updates"] += 1
        self.batches.append([int(t["image_id"]) for t in targets])
        return {"loss": loss, "localization": loss * 0.25, "classification": loss * 0.75}

    def validation_losses(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        self._check_batch(images, targets)
        self._last_targets = targets
        loss = float(self.val_loss(self.steps))
        return {"loss": loss, "localization": loss * 0.4, "classification": loss * 0.6}

    def predict_batch(self, images: np.ndarray) -> list[Detections]:
        """ "good": the ground truth of the batch (the trainer asks for validation losses of the
        same batch first); "weak": the same boxes with useless scores; "empty": nothing."""
        targets = self._last_targets[: len(images)]
        targets += [{"boxes": np.zeros((0, 4)), "labels": np.zeros(0)}] * (
            len(images) - len(targets)
        )
        out = []
        for target in targets:
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
        self.weights = 0.0
        self.optimizer_state = None

    def _state(self) -> dict[str, Any]:
        return {"weights": self.weights, "body": self.body}

    def save_checkpoint(self, path: Path, extra: dict) -> None:
        path.mkdir(parents=True)
        payload = {
            "steps": self.steps,
            "model_id": self.model_id,
            **self._state(),
            "optimizer": self.optimizer_state,
            "extra": extra,
        }
        (path / _STATE_FILE).write_text(json.dumps(payload))

    def load_checkpoint(self, path: Path) -> dict:
        payload = json.loads((Path(path) / _STATE_FILE).read_text())
        if payload["model_id"] != self.model_id:
            raise ModelError(f"the checkpoint is for {payload['model_id']}", where=str(path))
        self.steps, self.weights, self.body = payload["steps"], payload["weights"], payload["body"]
        self.optimizer_state = payload["optimizer"]
        return payload["extra"]

    def export(self, directory: Path) -> list[str]:
        (Path(directory) / FAKE_WEIGHTS).write_text(json.dumps(self._state()))
        return [FAKE_WEIGHTS]

    def runner(self, backend: str | None = None) -> Runner:
        if backend not in (None, *FakeEngine.backends):
            raise ModelError(f"the fake engine has no backend {backend!r}")
        return FakeRunner(self.label_map, self.image_size)


class FakeEngine(Engine):
    """Builds FakeDetectors; ``created`` keeps each one for the test to inspect."""

    name = "fake"
    backends = ("fake",)

    def __init__(self, **detector_options: Any):
        self.detector_options = detector_options
        self.created: list[FakeDetector] = []
        self.create_calls: list[dict] = []
        self.seeds: list[int] = []

    def seed(self, seed: int) -> None:
        self.seeds.append(seed)

    def resolve_device(self, device: str) -> str:
        if device not in ("auto", "cpu"):
            raise HyperparameterError(f"the fake engine has no device {device!r}")
        return "cpu"

    def checkpoint_name(self, role: CheckpointRole) -> str:
        return role  # a directory, like a TF checkpoint

    def create(
        self,
        spec,
        label_map,
        *,
        init="pretrained",
        reinitialize_head=True,
        device="cpu",
        image_size=None,
        weights=None,
    ) -> FakeDetector:
        size = image_size or spec.image_size
        self.create_calls.append(
            {
                "init": init,
                "reinitialize_head": reinitialize_head,
                "device": device,
                "image_size": size,
            }
        )
        detector = FakeDetector(label_map, size, model_id=spec.model_id, **self.detector_options)
        if not reinitialize_head:  # the fake's pretrained head fits any label map
            detector.weights = PRETRAINED_HEAD
        self.created.append(detector)
        return detector

    def load_detector(self, artifact, *, device="cpu") -> FakeDetector:
        detector = FakeDetector(
            artifact.label_map,
            artifact.image_size,
            model_id=artifact.model_id,
            **self.detector_options,
        )
        state = json.loads((artifact.directory / FAKE_WEIGHTS).read_text())
        detector.weights, detector.body = state["weights"], state["body"]
        self.created.append(detector)
        return detector

    def load_runner(self, artifact, backend=None) -> Runner:
        self.check_backend(backend)
        return FakeRunner(artifact.label_map, artifact.image_size)

    def pretrained_runner(self, spec, backend=None) -> Runner:
        raise ModelError(f"{spec.model_id} is not deployable as is")


def install(monkeypatch, engine: FakeEngine) -> FakeEngine:
    """Make ``boxtune.engines.get_engine`` return ``engine`` for every engine name."""
    import boxtune.engines

    monkeypatch.setattr(boxtune.engines, "get_engine", lambda name: engine)
    return engine

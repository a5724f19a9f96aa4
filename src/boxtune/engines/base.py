"""The small interface every engine (torch now, tensorflow later) implements.

Nothing outside ``boxtune/engines/`` imports a framework: the trainer, the server, the SDK and
evaluation talk to an engine only through these two classes, images as numpy arrays and results
as :class:`~boxtune.detections.Detections`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from boxtune.detections import Detections
from boxtune.labels import LabelMap

Init = Literal["pretrained", "random"]
Backend = Literal["onnxruntime", "torch"]


class Runner(ABC):
    """Inference only: decoded images in, detections in the same images' pixels out."""

    image_size: int
    label_map: LabelMap

    @abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """images: HxWx3 uint8 RGB arrays of any size; one Detections per image, sorted."""


class Detector(ABC):
    """A trainable detector for a fixed label map.

    Batches come from ``boxtune.data`` loaders: ``images`` uint8 [B, 3, S, S] and ``targets`` a
    list of dicts with ``boxes`` (float [N, 4] corner pixels in the S x S image) and ``labels``
    (int64 [N] class indices).
    """

    image_size: int
    label_map: LabelMap
    # Read by boxtune.artifacts when writing the manifest.
    engine: str
    model_id: str
    family: str

    def reinitialize_head(self) -> None:
        """A new, randomly initialised class head for ``label_map`` (reinitialize_top_layer
        in incremental training); call configure_optimizer again afterwards."""
        raise NotImplementedError

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count (only the ones set_trainable left trainable, if asked)."""
        raise NotImplementedError

    @abstractmethod
    def set_trainable(self, head_only: bool) -> None:
        """head_only: freeze every parameter and batch-norm statistic outside the head."""

    @abstractmethod
    def configure_optimizer(self, hyperparameters: Any) -> list[str]:
        """Build the optimizer; return the names of options ignored by that optimizer."""

    @abstractmethod
    def set_learning_rate(self, lr: float) -> None: ...

    @abstractmethod
    def train_step(self, images: Any, targets: list[dict]) -> dict[str, float]:
        """One optimisation step; returns loss, localization, classification (floats)."""

    @abstractmethod
    def validation_losses(self, images: Any, targets: list[dict]) -> dict[str, float]:
        """Losses without updating anything: localization, classification, loss."""

    @abstractmethod
    def predict_batch(self, images: Any) -> list[Detections]:
        """Detections for a loader batch, boxes in the S x S input pixels."""

    @abstractmethod
    def save_checkpoint(self, path: Path, extra: dict) -> None:
        """Model + optimizer state + ``extra`` (epoch, history, rng) for --resume."""

    @abstractmethod
    def load_checkpoint(self, path: Path) -> dict:
        """Restore what save_checkpoint wrote; return ``extra``."""

    @abstractmethod
    def export(self, directory: Path) -> list[str]:
        """Write the engine's weights files (and model.onnx) into directory; return names."""

    @abstractmethod
    def runner(self, backend: Backend = "torch") -> Runner:
        """An in-process runner over the current weights."""

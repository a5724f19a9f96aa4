"""Framework-free detection results, shared by engines, serving and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Detections:
    """Detections for one image.

    boxes: float32 [N, 4] corner boxes ``[xmin, ymin, xmax, ymax]`` in pixels of the image the
    caller passed in; classes: int64 [N] 0-based class indices (see ``LabelMap``);
    scores: float32 [N] in [0, 1], sorted in decreasing order.
    model_output: the runner's raw, JSON-able outputs for this image where it has its own
    (TensorFlow's signature outputs); selecting detections keeps it as it is.
    """

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    model_output: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), np.zeros((0,), np.float32)
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def sorted(self) -> Detections:
        return self._select(np.argsort(-self.scores, kind="stable"))

    def top(self, n: int) -> Detections:
        return self._select(slice(0, n))

    def above(self, threshold: float) -> Detections:
        return self._select(self.scores >= threshold)

    def _select(self, index) -> Detections:
        return Detections(
            self.boxes[index], self.classes[index], self.scores[index], self.model_output
        )

"""Framework-free detection results, shared by engines, serving and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Detections for one image.

    boxes: float32 [N, 4] corner boxes ``[xmin, ymin, xmax, ymax]`` in pixels of the image the
    caller passed in; classes: int64 [N] 0-based class indices (see ``LabelMap``);
    scores: float32 [N] in [0, 1], sorted in decreasing order.
    """

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), np.zeros((0,), np.float32)
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def sorted(self) -> Detections:
        order = np.argsort(-self.scores, kind="stable")
        return Detections(self.boxes[order], self.classes[order], self.scores[order])

    def top(self, n: int) -> Detections:
        return Detections(self.boxes[:n], self.classes[:n], self.scores[:n])

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.classes[keep], self.scores[keep])

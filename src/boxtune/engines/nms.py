"""Class-aware non-maximum suppression in numpy, so that serving needs no framework.

It gives what ``torchvision.ops.batched_nms`` gives on the CPU (the same kept boxes in the same
order): boxes are sorted by score, each class is moved to its own coordinate range by the same
offset torchvision adds, and the greedy pass keeps a box unless an earlier kept one overlaps it
by more than the threshold (IoU computed in float32, as torchvision's kernel does).
"""

from __future__ import annotations

import numpy as np


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    iou_threshold: float,
    max_kept: int | None = None,
) -> np.ndarray:
    """Indices of the kept boxes, highest score first (at most ``max_kept``).

    boxes: float32 [N, 4] xyxy; scores: [N]; classes: int [N]; boxes of different classes never
    suppress each other."""
    boxes = np.asarray(boxes, dtype=np.float32)
    count = boxes.shape[0]
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    # One range per class: the largest coordinate + 1, times the class (torchvision's trick).
    offsets = np.asarray(classes).astype(np.float32) * (boxes.max() + np.float32(1))
    shifted = boxes + offsets[:, None]
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    return _greedy(shifted, order, np.float32(iou_threshold), max_kept or count)


def _greedy(boxes: np.ndarray, order: np.ndarray, threshold: np.float32, max_kept: int):
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    kept: list[int] = []
    remaining = order
    while remaining.size and len(kept) < max_kept:
        best, rest = remaining[0], remaining[1:]
        kept.append(int(best))
        width = np.maximum(
            np.float32(0), np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest])
        )
        height = np.maximum(
            np.float32(0), np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest])
        )
        inter = width * height
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[best] + areas[rest] - inter)
        remaining = rest[~(iou > threshold)]  # NaN (two empty boxes) keeps, as torchvision does
    return np.asarray(kept, dtype=np.int64)

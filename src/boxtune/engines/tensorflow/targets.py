"""Loader targets as the fixed-shape arrays that the TensorFlow training step takes.

boxtune's loader gives, per image, pixel corner boxes ``[xmin, ymin, xmax, ymax]`` in the
``S x S`` image and 0-based class indices. The TF Object Detection API wants normalised
``[ymin, xmin, ymax, xmax]`` boxes, and a ``tf.function`` with a fixed input signature wants
every image padded to the same ``M`` boxes. Plain numpy: no TensorFlow import here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_MAX_BOXES = 100  # the TF OD API's default max_number_of_boxes


def _normalised_yxyx(boxes: Any, image_size: int) -> np.ndarray:
    """``[N, 4]`` pixel xyxy -> normalised yxyx clipped to [0, 1]."""
    xyxy = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / np.float32(image_size)
    xyxy = np.clip(xyxy, 0.0, 1.0)
    return xyxy[:, [1, 0, 3, 2]]


def _kept_indices(yxyx: np.ndarray, max_boxes: int) -> np.ndarray:
    """Indices of the non-degenerate boxes, at most ``max_boxes`` (the largest), in input order."""
    heights = yxyx[:, 2] - yxyx[:, 0]
    widths = yxyx[:, 3] - yxyx[:, 1]
    keep = np.flatnonzero((heights > 0) & (widths > 0))
    if keep.size > max_boxes:
        # Stable sort, so equal areas keep the earlier box; then back to input order, because
        # the matcher breaks forced-match ties by gt order.
        by_area = np.argsort(-(heights * widths)[keep], kind="stable")
        keep = np.sort(keep[by_area[:max_boxes]])
    return keep


def pad_targets(
    targets: Sequence[Mapping[str, Any]], image_size: int, max_boxes: int = DEFAULT_MAX_BOXES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pads per-image loader targets to ``max_boxes`` rows.

    Args:
        targets: per image, ``boxes`` ``[N, 4]`` pixel ``[xmin, ymin, xmax, ymax]`` in the
            ``image_size x image_size`` image and ``labels`` ``[N]`` 0-based class indices.
        image_size: the side ``S`` of the (square) training image.
        max_boxes: ``M``, the padded number of boxes per image.

    Returns:
        ``boxes`` float32 ``[B, M, 4]`` normalised ``[ymin, xmin, ymax, xmax]`` clipped to
        [0, 1]; ``classes`` int32 ``[B, M]``; ``valid`` bool ``[B, M]``. Padded rows are zeros,
        class 0 and not valid.

    Boxes with zero width or height after clipping are dropped. If an image still has more
    than ``max_boxes`` boxes, only the ``max_boxes`` largest by (clipped) area are kept (equal
    areas: the earlier box); kept boxes stay in their input order.
    """
    if max_boxes < 1:
        raise ValueError(f"max_boxes must be at least 1, got {max_boxes}")
    batch = len(targets)
    boxes = np.zeros((batch, max_boxes, 4), np.float32)
    classes = np.zeros((batch, max_boxes), np.int32)
    valid = np.zeros((batch, max_boxes), bool)
    for i, target in enumerate(targets):
        yxyx = _normalised_yxyx(target["boxes"], image_size)
        labels = np.asarray(target["labels"], dtype=np.int64).reshape(-1)
        if labels.shape[0] != yxyx.shape[0]:
            raise ValueError(f"image {i}: {yxyx.shape[0]} boxes but {labels.shape[0]} labels")
        keep = _kept_indices(yxyx, max_boxes)
        boxes[i, : keep.size] = yxyx[keep]
        classes[i, : keep.size] = labels[keep]
        valid[i, : keep.size] = True
    return boxes, classes, valid

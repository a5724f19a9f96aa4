"""Images into a network, detections back out: shared by the engines' runners (numpy only).

Images are stretched to S x S (as the training loader does); detections come back in the
pixels of each original image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from boxtune.detections import Detections
from boxtune.errors import ModelError


def as_rgb_uint8(image: np.ndarray, index: int = 0) -> np.ndarray:
    """Gray and RGBA become RGB; anything else that is not HxWx3 uint8 is an error."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ModelError(
            f"image {index} has dtype {array.dtype}, expected uint8",
            where=f"images[{index}]",
            hint="decode images with PIL/numpy to 0..255 uint8 RGB arrays",
        )
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise ModelError(
            f"image {index} has shape {array.shape}, expected HxWx3",
            where=f"images[{index}]",
            hint="pass RGB images as height x width x 3 arrays",
        )
    return array[:, :, :3]


def stretch_batch(
    images: Sequence[np.ndarray], size: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """uint8 ``[B, S, S, 3]`` (bilinear, as the loader) and each image's (height, width)."""
    batch = np.empty((len(images), size, size, 3), dtype=np.uint8)
    sizes = []
    for i, image in enumerate(images):
        rgb = as_rgb_uint8(image, i)
        sizes.append((int(rgb.shape[0]), int(rgb.shape[1])))
        if rgb.shape[:2] == (size, size):
            batch[i] = rgb
            continue
        resized = Image.fromarray(np.ascontiguousarray(rgb)).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        batch[i] = np.asarray(resized)
    return batch, sizes


def to_original(det: Detections, size: int, height: int, width: int) -> Detections:
    """Detections in S x S input pixels -> in the pixels of a ``height`` x ``width`` image."""
    scale = np.array([width / size, height / size, width / size, height / size], np.float32)
    return Detections((det.boxes * scale).astype(np.float32), det.classes, det.scores)

"""The check every export of the TensorFlow engine passes before it is written: the same boxes
as the Keras model on a deterministic image."""

from __future__ import annotations

import numpy as np

from boxtune.errors import ModelError


def check_image(size: int) -> np.ndarray:
    """A deterministic textured image with a few bright shapes (something to detect)."""
    rng = np.random.default_rng(0)
    image = rng.integers(40, 120, (size, size, 3), dtype=np.uint8)
    for i in range(3):
        y, x = (size // 5) * (i + 1), (size // 4) * (i % 3 + 1)
        image[y : y + size // 6, x : x + size // 7] = (220, 200 - 60 * i, 60 * i)
    return image


def max_box_difference(reference: dict, candidate: dict, top: int = 10) -> float:
    """Largest coordinate difference over the reference's ``top`` detections of image 0."""
    count = min(top, int(reference["num_detections"][0]))
    if count == 0:
        return 0.0
    a = reference["detection_boxes"][0, :count]
    b = candidate["detection_boxes"][0, :count]
    return float(np.abs(a - b).max())


def check_export(detector, run, *, what: str, tolerance: float, where: str) -> float:
    """``run(image [S, S, 3]) -> signature outputs`` must give ``detector``'s boxes within
    ``tolerance``; returns the difference, or raises a ModelError naming it."""
    image = check_image(detector.image_size)
    difference = max_box_difference(detector.detect_outputs(image[None]), run(image))
    if not difference <= tolerance:
        raise ModelError(
            f"the {what} conversion gives other boxes than the model (max difference "
            f"{difference:.4f} > {tolerance})",
            where=where,
            hint="report it with the artifact's manifest; serve the SavedModel meanwhile",
        )
    return difference

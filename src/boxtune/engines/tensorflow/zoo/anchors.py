"""The TF Object Detection API's ``multiscale_anchor_generator`` (RetinaNet-style anchors), as
the TF2 zoo SSD models (FPN, FPNLite, EfficientDet) configure it.

Level ``l`` (``min_level..max_level``) has stride ``2**l`` and base size
``anchor_scale * 2**l`` pixels; each location has one anchor per (aspect ratio, octave scale)
pair, aspect ratios outer and octave scales ``2**(i / scales_per_octave)`` inner. Centres are
``(row, column) * stride + offset``, the offset being half a stride on an axis whose image size
is a multiple of the stride and 0 otherwise (the API's rule: a 320 px input has offset 0 on
level 7). The anchors are computed in pixels in float32, as the API does, then normalised by the
network input size; order: level, row, column, then the per-location anchors, the order of the
box predictor's reshape. Checked against the API's own ``predict/anchors``
(``tests/engines/tensorflow/zoo/test_zoo_postprocess.py``).

The SSDLite engine's ``ssd_anchor_generator`` (``boxtune.engines.tensorflow.anchors``) is
another generator: scales relative to the image and centres in normalised coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class MultiscaleAnchorConfig(Protocol):
    """The fields of ``multiscale_anchor_generator`` (``zoo.configs.AnchorConfig`` has them)."""

    @property
    def min_level(self) -> int: ...
    @property
    def max_level(self) -> int: ...
    @property
    def anchor_scale(self) -> float: ...
    @property
    def aspect_ratios(self) -> Sequence[float]: ...
    @property
    def scales_per_octave(self) -> int: ...


def octave_scales(scales_per_octave: int) -> list[float]:
    """``2**(i / scales_per_octave)`` for ``i < scales_per_octave``."""
    return [2.0 ** (float(i) / scales_per_octave) for i in range(scales_per_octave)]


def anchors_per_location(*, aspect_ratios: Sequence[float], scales_per_octave: int) -> int:
    return len(aspect_ratios) * scales_per_octave


def feature_map_shapes(
    image_shape: tuple[int, int], *, min_level: int, max_level: int
) -> list[tuple[int, int]]:
    """The grid of each level for an input of ``image_shape`` whose feature maps halve with
    "same" padding (``ceil(size / 2**level)``), as the zoo's backbones and necks give them."""
    height, width = image_shape
    return [
        (-(-height // 2**level), -(-width // 2**level)) for level in range(min_level, max_level + 1)
    ]


def multiscale_grid_anchors(
    *,
    feature_map_shapes: Sequence[tuple[int, int]],
    image_shape: tuple[int, int],
    min_level: int,
    max_level: int,
    anchor_scale: float,
    aspect_ratios: Sequence[float],
    scales_per_octave: int,
    normalize_coordinates: bool = True,
) -> np.ndarray:
    """float32 ``[A, 4]`` anchors ``[ymin, xmin, ymax, xmax]`` for the feature maps of levels
    ``min_level..max_level`` (``feature_map_shapes``: their (rows, columns)) of a network input
    of ``image_shape`` (height, width) pixels; normalised to the input unless
    ``normalize_coordinates`` is False."""
    levels = list(range(min_level, max_level + 1))
    if len(feature_map_shapes) != len(levels):
        raise ValueError(
            f"{len(feature_map_shapes)} feature maps for the {len(levels)} levels "
            f"{min_level}..{max_level}"
        )
    image_height, image_width = image_shape
    f32 = np.float32
    scales = np.array(octave_scales(scales_per_octave), f32)
    ratios = np.array(list(aspect_ratios), f32)
    # Per location: aspect ratio outer, octave scale inner (the API's meshgrid(scales, ratios))
    scale_grid = np.tile(scales, len(ratios))
    ratio_grid = np.repeat(ratios, len(scales))
    ratio_sqrts = np.sqrt(ratio_grid)
    found = []
    for level, (rows, cols) in zip(levels, feature_map_shapes, strict=True):
        stride = 2**level
        base = f32(stride * anchor_scale)
        heights = scale_grid / ratio_sqrts * base
        widths = scale_grid * ratio_sqrts * base
        offset_y = f32(stride / 2.0 if image_height % stride == 0 else 0.0)
        offset_x = f32(stride / 2.0 if image_width % stride == 0 else 0.0)
        y_centers = np.arange(rows, dtype=f32) * f32(stride) + offset_y
        x_centers = np.arange(cols, dtype=f32) * f32(stride) + offset_x
        shape = (rows, cols, len(scale_grid))
        cy = np.broadcast_to(y_centers[:, None, None], shape)
        cx = np.broadcast_to(x_centers[None, :, None], shape)
        h = np.broadcast_to(heights[None, None, :], shape)
        w = np.broadcast_to(widths[None, None, :], shape)
        half = f32(0.5)
        corners = np.stack([cy - half * h, cx - half * w, cy + half * h, cx + half * w], axis=-1)
        found.append(corners.reshape(-1, 4))
    anchors = np.concatenate(found).astype(f32)
    if normalize_coordinates:
        # box_list_ops.to_normalized_coordinates: multiplied by float32 1 / size
        inverse = np.array([f32(1) / f32(image_height), f32(1) / f32(image_width)] * 2, dtype=f32)
        anchors = anchors * inverse
    return anchors


def multiscale_anchors(
    feature_map_shapes: Sequence[tuple[int, int]],
    config: MultiscaleAnchorConfig,
    image_shape: tuple[int, int],
) -> np.ndarray:
    """:func:`multiscale_grid_anchors` with the generator's fields from ``config``."""
    return multiscale_grid_anchors(
        feature_map_shapes=feature_map_shapes,
        image_shape=image_shape,
        min_level=config.min_level,
        max_level=config.max_level,
        anchor_scale=config.anchor_scale,
        aspect_ratios=config.aspect_ratios,
        scales_per_octave=config.scales_per_octave,
    )

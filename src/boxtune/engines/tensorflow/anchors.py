"""The TF Object Detection API's ``ssd_anchor_generator`` (a multiple-grid anchor generator).

Anchors are corner boxes ``[ymin, xmin, ymax, xmax]`` normalised to the input, ordered level by
level, then row, column and box spec, the order the box predictor's reshape uses. Checked
against the anchors of the pretrained person detector's own frozen graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SSDAnchorConfig:
    """The fields of the API's ``ssd_anchor_generator`` message (SSD configs' defaults)."""

    num_layers: int = 6
    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 0.3333)
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True


def box_specs(config: SSDAnchorConfig) -> list[list[tuple[float, float]]]:
    """Per level, its (scale, aspect ratio) pairs."""
    n = config.num_layers
    scales = [
        config.min_scale + (config.max_scale - config.min_scale) * i / (n - 1) for i in range(n)
    ]
    scales.append(1.0)
    levels = []
    for layer in range(n):
        scale, next_scale = scales[layer], scales[layer + 1]
        if layer == 0 and config.reduce_boxes_in_lowest_layer:
            levels.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        specs = [(scale, ratio) for ratio in config.aspect_ratios]
        if config.interpolated_scale_aspect_ratio > 0:
            specs.append(
                (float(np.sqrt(scale * next_scale)), config.interpolated_scale_aspect_ratio)
            )
        levels.append(specs)
    return levels


def anchors_per_location(config: SSDAnchorConfig) -> list[int]:
    return [len(specs) for specs in box_specs(config)]


def grid_anchors(
    grid_sizes: list[tuple[int, int]], config: SSDAnchorConfig, image_shape: tuple[int, int]
) -> np.ndarray:
    """float32 ``[A, 4]`` anchors for feature maps of ``grid_sizes`` (height, width)."""
    height, width = image_shape
    shortest = min(height, width)
    base_height, base_width = shortest / height, shortest / width  # square anchors on any input
    levels = []
    for (rows, cols), specs in zip(grid_sizes, box_specs(config), strict=True):
        scales = np.array([s for s, _ in specs], np.float32)
        ratio_roots = np.sqrt(np.array([r for _, r in specs], np.float32))
        heights = scales / ratio_roots * base_height
        widths = scales * ratio_roots * base_width
        stride_y, stride_x = np.float32(1.0 / rows), np.float32(1.0 / cols)
        y_centers = np.arange(rows, dtype=np.float32) * stride_y + np.float32(0.5) * stride_y
        x_centers = np.arange(cols, dtype=np.float32) * stride_x + np.float32(0.5) * stride_x
        cy = np.broadcast_to(y_centers[:, None, None], (rows, cols, len(specs)))
        cx = np.broadcast_to(x_centers[None, :, None], (rows, cols, len(specs)))
        h = np.broadcast_to(heights[None, None, :], (rows, cols, len(specs)))
        w = np.broadcast_to(widths[None, None, :], (rows, cols, len(specs)))
        corners = np.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)
        levels.append(corners.reshape(-1, 4))
    return np.concatenate(levels).astype(np.float32)

"""The default model's raw outputs -> detections, in numpy: anchors, box decoding, score floor,
pre-NMS top-k and class-aware NMS.

Numpy, not torch, so that the torch and ONNX Runtime runners share one implementation and
serving ``model.onnx`` needs no torch. Training keeps the torch ``decode`` of ``anchors.py``
(it needs gradients); a test holds the two to the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from boxtune.detections import Detections
from boxtune.engines.nms import batched_nms

# The default model's pyramid P3-P6: the backbone's strides 8, 16, 32 and one extra level.
PYRAMID_STRIDES = (8, 16, 32, 64)
ANCHOR_SCALE = 4.0  # anchor side = scale x stride: 32 px on P3 ... 256 px on P6
MAX_LOG_SIZE = math.log(1000.0 / 16)


@dataclass(frozen=True)
class PostprocessConfig:
    # Scores this small never change a ranking metric but would flood NMS.
    score_floor: float = 1e-4
    pre_nms_top_k: int = 1000
    max_detections: int = 100
    iou_threshold: float = 0.6


DEFAULT_POSTPROCESS = PostprocessConfig()


def feature_sizes(image_size: int, strides: tuple[int, ...]) -> list[int]:
    return [math.ceil(image_size / s) for s in strides]


def anchor_grid(image_size: int, strides: tuple[int, ...]) -> np.ndarray:
    """float32 [A, 4] xyxy anchors in input pixels, level by level, row-major in each level
    (the order in which the head flattens its outputs)."""
    levels = []
    for stride, size in zip(strides, feature_sizes(image_size, strides), strict=True):
        centers = (np.arange(size, dtype=np.float32) + np.float32(0.5)) * np.float32(stride)
        cy, cx = np.meshgrid(centers, centers, indexing="ij")
        half = np.float32(ANCHOR_SCALE * stride / 2)
        levels.append(np.stack([cx - half, cy - half, cx + half, cy + half], -1).reshape(-1, 4))
    return np.concatenate(levels).astype(np.float32)


def decode_boxes(anchors: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Deltas (dx, dy, log dw, log dh) relative to each anchor -> float32 xyxy boxes."""
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + np.float32(0.5) * widths + deltas[:, 0] * widths
    cy = anchors[:, 1] + np.float32(0.5) * heights + deltas[:, 1] * heights
    limit = np.float32(MAX_LOG_SIZE)
    w = widths * np.exp(np.minimum(deltas[:, 2], limit))
    h = heights * np.exp(np.minimum(deltas[:, 3], limit))
    half_w, half_h = np.float32(0.5) * w, np.float32(0.5) * h
    return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], -1).astype(np.float32)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp overflow of very negative logits is a 0 score
        return (np.float32(1) / (np.float32(1) + np.exp(-logits))).astype(np.float32)


def postprocess(
    logits: np.ndarray,
    deltas: np.ndarray,
    anchors: np.ndarray,
    image_size: int,
    config: PostprocessConfig = DEFAULT_POSTPROCESS,
) -> list[Detections]:
    """Detections per image, boxes in input (image_size x image_size) pixels, sorted by score.

    logits: [B, A, C]; deltas: [B, A, 4]; anchors: [A, 4] (from :func:`anchor_grid`)."""
    results = []
    num_classes = logits.shape[-1]
    scores_all = sigmoid(np.asarray(logits, dtype=np.float32)).reshape(logits.shape[0], -1)
    for scores, image_deltas in zip(scores_all, np.asarray(deltas, np.float32), strict=True):
        keep = np.flatnonzero(scores > np.float32(config.score_floor))
        if keep.size == 0:
            results.append(Detections.empty())
            continue
        if keep.size > config.pre_nms_top_k:
            best = np.argsort(-scores[keep], kind="stable")[: config.pre_nms_top_k]
            keep = keep[best]
        anchor_index, classes = keep // num_classes, keep % num_classes
        boxes = decode_boxes(anchors[anchor_index], image_deltas[anchor_index])
        boxes = np.clip(boxes, 0, image_size).astype(np.float32)
        kept = batched_nms(
            boxes, scores[keep], classes, config.iou_threshold, config.max_detections
        )
        results.append(
            Detections(boxes[kept], classes[kept].astype(np.int64), scores[keep][kept]).sorted()
        )
    return results

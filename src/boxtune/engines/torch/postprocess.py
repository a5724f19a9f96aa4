"""Raw head outputs -> detections: sigmoid, score floor, pre-NMS top-k, decode, class-aware NMS.

Kept outside the exported ONNX graph so that the torch and onnxruntime runners share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import batched_nms

from boxtune.detections import Detections
from boxtune.engines.torch.anchors import decode


@dataclass(frozen=True)
class PostprocessConfig:
    # Scores this small never change a ranking metric but would flood NMS.
    score_floor: float = 1e-4
    pre_nms_top_k: int = 1000
    max_detections: int = 100
    iou_threshold: float = 0.6


DEFAULT_POSTPROCESS = PostprocessConfig()


def postprocess(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    anchors: torch.Tensor,
    image_size: int,
    config: PostprocessConfig | None = None,
) -> list[Detections]:
    """Detections per image, boxes in input (image_size x image_size) pixels, sorted by score."""
    config = config or DEFAULT_POSTPROCESS
    results = []
    num_classes = logits.shape[-1]
    scores_all = logits.float().sigmoid().reshape(logits.shape[0], -1)
    for scores, image_deltas in zip(scores_all, deltas.float(), strict=True):
        keep = (scores > config.score_floor).nonzero().squeeze(1)
        if keep.numel() == 0:
            results.append(Detections.empty())
            continue
        scores = scores[keep]
        if scores.numel() > config.pre_nms_top_k:
            scores, order = scores.topk(config.pre_nms_top_k)
            keep = keep[order]
        anchor_index = keep // num_classes
        classes = keep % num_classes
        boxes = decode(anchors[anchor_index], image_deltas[anchor_index]).clamp(0, image_size)
        kept = batched_nms(boxes, scores, classes, config.iou_threshold)[: config.max_detections]
        results.append(
            Detections(
                boxes[kept].cpu().numpy().astype(np.float32),
                classes[kept].cpu().numpy().astype(np.int64),
                scores[kept].cpu().numpy().astype(np.float32),
            ).sorted()
        )
    return results

"""Detection loss: quality focal loss for classes, GIoU for boxes, on ATSS-assigned anchors.

Quality focal loss (Li et al., Generalized Focal Loss, 2020) trains the class score of a positive
towards the IoU of its predicted box, so scores rank boxes by localisation quality; no separate
centerness branch is needed, which keeps the head (and the CPU step) small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from boxtune.engines.torch.anchors import atss_assign, decode

BOX_LOSS_WEIGHT = 2.0
QFL_BETA = 2.0


def _pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    return inter / (area_a + area_b - inter).clamp(min=1e-6)


def detection_loss(
    logits: torch.Tensor,
    deltas: torch.Tensor,
    anchors: torch.Tensor,
    counts: list[int],
    targets: list[dict],
) -> dict[str, torch.Tensor]:
    """logits [B, A, C], deltas [B, A, 4]; targets: boxes (xyxy input pixels), labels (0-based).

    Returns ``classification`` and ``localization`` (both normalised by the number of positives
    in the batch) and their sum ``loss``.
    """
    cls_targets = torch.zeros_like(logits)
    pos_pred, pos_gt, pos_index = [], [], []
    for i, target in enumerate(targets):
        gt_boxes = target["boxes"].to(anchors.device, torch.float32).reshape(-1, 4)
        labels = target["labels"].to(anchors.device, torch.long).reshape(-1)
        assigned = atss_assign(anchors, counts, gt_boxes)
        positive = (assigned >= 0).nonzero().squeeze(1)
        if positive.numel() == 0:
            continue
        pred_boxes = decode(anchors[positive], deltas[i, positive])
        matched = gt_boxes[assigned[positive]]
        pos_pred.append(pred_boxes)
        pos_gt.append(matched)
        pos_index.append((i, positive, labels[assigned[positive]]))

    num_pos = sum(p.shape[0] for p in pos_pred)
    normaliser = max(float(num_pos), 1.0)
    if num_pos:
        pred = torch.cat(pos_pred)
        gt = torch.cat(pos_gt)
        localization = generalized_box_iou_loss(pred, gt, reduction="sum") / normaliser
        quality = _pairwise_iou(pred.detach(), gt).clamp(min=0.0)
        offset = 0
        for i, positive, labels in pos_index:
            n = positive.numel()
            cls_targets[i, positive, labels] = quality[offset : offset + n]
            offset += n
    else:
        localization = deltas.sum() * 0.0

    probs = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, cls_targets, reduction="none")
    classification = (bce * (probs - cls_targets).abs().pow(QFL_BETA)).sum() / normaliser
    localization = localization * BOX_LOSS_WEIGHT
    return {
        "loss": classification + localization,
        "classification": classification,
        "localization": localization,
    }

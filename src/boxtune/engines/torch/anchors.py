"""Anchors (one square per location and level), box coding, and the ATSS label assignment.

ATSS (Zhang et al., 2020) picks, for each ground-truth box, the k anchors nearest its centre on
every level and keeps those whose IoU beats the mean + std of the candidates' IoUs. It has no
IoU threshold to tune and gives small objects positives, which is why it converges fast.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou

from boxtune.engines.torch.decoding import MAX_LOG_SIZE, anchor_grid, feature_sizes


def make_anchors(image_size: int, strides: tuple[int, ...]) -> torch.Tensor:
    """[A, 4] xyxy anchors in input pixels: :func:`~boxtune.engines.torch.decoding.anchor_grid`
    as a tensor (one definition for training and serving)."""
    return torch.from_numpy(anchor_grid(image_size, strides))


def level_counts(image_size: int, strides: tuple[int, ...]) -> list[int]:
    return [s * s for s in feature_sizes(image_size, strides)]


def decode(anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Deltas (dx, dy, log dw, log dh) relative to the anchor -> xyxy boxes (any leading dims).
    The differentiable twin of ``decoding.decode_boxes``, for the training loss."""
    widths = anchors[..., 2] - anchors[..., 0]
    heights = anchors[..., 3] - anchors[..., 1]
    cx = anchors[..., 0] + 0.5 * widths + deltas[..., 0] * widths
    cy = anchors[..., 1] + 0.5 * heights + deltas[..., 1] * heights
    w = widths * torch.exp(deltas[..., 2].clamp(max=MAX_LOG_SIZE))
    h = heights * torch.exp(deltas[..., 3].clamp(max=MAX_LOG_SIZE))
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def atss_assign(
    anchors: torch.Tensor, counts: list[int], gt_boxes: torch.Tensor, top_k: int = 9
) -> torch.Tensor:
    """For each anchor the index of its ground-truth box, or -1 for background.

    Every ground truth gets at least its best candidate, so tiny or odd-shaped boxes are never
    left without a positive.
    """
    num_anchors = anchors.shape[0]
    assigned = torch.full((num_anchors,), -1, dtype=torch.long, device=anchors.device)
    if gt_boxes.numel() == 0:
        return assigned
    ious = box_iou(gt_boxes, anchors)  # [G, A]
    gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    anchor_centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    distances = torch.cdist(gt_centers, anchor_centers)  # [G, A]

    candidates = []
    start = 0
    for count in counts:
        k = min(top_k, count)
        nearest = distances[:, start : start + count].topk(k, dim=1, largest=False).indices
        candidates.append(nearest + start)
        start += count
    candidates = torch.cat(candidates, dim=1)  # [G, K]
    candidate_ious = ious.gather(1, candidates)
    threshold = candidate_ious.mean(dim=1, keepdim=True) + candidate_ious.std(dim=1, keepdim=True)

    cand_centers = anchor_centers[candidates]  # [G, K, 2]
    inside = (
        (cand_centers[..., 0] > gt_boxes[:, None, 0])
        & (cand_centers[..., 0] < gt_boxes[:, None, 2])
        & (cand_centers[..., 1] > gt_boxes[:, None, 1])
        & (cand_centers[..., 1] < gt_boxes[:, None, 3])
    )
    positive = (candidate_ious >= threshold) & inside
    best = candidate_ious.argmax(dim=1, keepdim=True)
    positive.scatter_(1, best, True)

    # An anchor chosen by several boxes goes to the one it overlaps most.
    num_gt = gt_boxes.shape[0]
    score = torch.full((num_gt, num_anchors), -1.0, device=anchors.device)
    score.scatter_(1, candidates, torch.where(positive, candidate_ious, -1.0))
    best_score, best_gt = score.max(dim=0)
    assigned[best_score >= 0] = best_gt[best_score >= 0]
    return assigned

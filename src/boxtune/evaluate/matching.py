"""Greedy IoU matching of one image's detections to its ground truth.

The confusion matrix and the precision/recall at a score threshold come from this matching, not
from the COCO library, because COCO matching is per class and cannot tell a wrong class from a
false detection. Two greedy passes, detections in decreasing score order:

1. same class: each detection takes the unmatched ground-truth box of its class with the highest
   IoU >= the IoU threshold -> true positive;
2. any class, among what is left: a detection overlapping an unmatched box of another class is a
   confusion (counted in the matrix cell ground-truth class x predicted class).

Detections still unmatched are false detections (background row), boxes still unmatched are
misses (background column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of corner boxes a [N, 4] x b [M, 4] -> [N, M] (0 where a box has no area)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    left_top = np.maximum(a[:, None, :2], b[None, :, :2])
    right_bottom = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(right_bottom - left_top, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def _greedy(
    iou: np.ndarray,
    allowed: np.ndarray,
    threshold: float,
    det_free: np.ndarray,
    gt_free: np.ndarray,
) -> list[tuple[int, int]]:
    """Match detections (rows, already in score order) to boxes (columns); updates the masks."""
    candidates = np.where(allowed & (iou >= threshold), iou, -1.0)
    pairs: list[tuple[int, int]] = []
    # Only rows with at least one candidate can match: skips the bulk of low-score detections.
    for row in np.flatnonzero(det_free & (candidates.max(axis=1, initial=-1.0) >= 0)):
        scores = np.where(gt_free, candidates[row], -1.0)
        col = int(scores.argmax())
        if scores[col] < 0:
            continue
        pairs.append((int(row), col))
        det_free[row] = False
        gt_free[col] = False
    return pairs


@dataclass
class ImageMatch:
    """Outcome of matching one image; indices refer to the arrays passed to ``match_image``.

    ``true_positives``/``confusions`` hold (detection, ground truth) pairs; ``false_positives``
    detections matched to nothing; ``misses`` ground-truth boxes matched to nothing.
    """

    true_positives: list[tuple[int, int]]
    confusions: list[tuple[int, int]]
    false_positives: list[int]
    misses: list[int]

    def add_to_confusion(
        self, matrix: np.ndarray, gt_classes: np.ndarray, det_classes: np.ndarray
    ) -> None:
        """Count this image into ``matrix`` [N+1, N+1] (rows truth, columns prediction)."""
        background = matrix.shape[0] - 1
        for det, gt in self.true_positives + self.confusions:
            matrix[gt_classes[gt], det_classes[det]] += 1
        for det in self.false_positives:
            matrix[background, det_classes[det]] += 1
        for gt in self.misses:
            matrix[gt_classes[gt], background] += 1


def match_image(
    gt_boxes: np.ndarray,
    gt_classes: np.ndarray,
    det_boxes: np.ndarray,
    det_classes: np.ndarray,
    det_scores: np.ndarray,
    iou_threshold: float = 0.5,
    confusions: bool = True,
) -> ImageMatch:
    """Match detections to ground truth, see the module docstring.

    With ``confusions=False`` only the same-class pass runs (every detection not a true
    positive is a false positive), as COCO matching at one IoU threshold does.
    """
    gt_classes = np.asarray(gt_classes, dtype=np.int64).reshape(-1)
    det_classes = np.asarray(det_classes, dtype=np.int64).reshape(-1)
    order = np.argsort(-np.asarray(det_scores, dtype=np.float64), kind="stable")
    n_det, n_gt = len(order), len(gt_classes)
    det_free = np.ones(n_det, dtype=bool)
    gt_free = np.ones(n_gt, dtype=bool)
    true_positives: list[tuple[int, int]] = []
    confused: list[tuple[int, int]] = []
    if n_det and n_gt:
        iou = box_iou(np.asarray(det_boxes)[order], gt_boxes)
        same_class = det_classes[order][:, None] == gt_classes[None, :]
        true_positives = _greedy(iou, same_class, iou_threshold, det_free, gt_free)
        if confusions:
            confused = _greedy(iou, ~same_class, iou_threshold, det_free, gt_free)
    to_original = order.tolist()
    return ImageMatch(
        true_positives=[(to_original[d], g) for d, g in true_positives],
        confusions=[(to_original[d], g) for d, g in confused],
        false_positives=[to_original[d] for d in np.flatnonzero(det_free)],
        misses=[int(g) for g in np.flatnonzero(gt_free)],
    )

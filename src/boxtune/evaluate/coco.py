"""COCO-style metrics through ``faster_coco_eval``, kept quiet and free of NaN.

Conversions live here and only here: our boxes are pixel corners ``[xmin, ymin, xmax, ymax]`` and
our classes 0-based indices; COCO wants ``[x, y, width, height]`` and category ids.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# COCO's summary order (``COCOeval.stats``) and the names we publish them under.
SUMMARY_KEYS = (
    "map",
    "map50",
    "map75",
    "map_small",
    "map_medium",
    "map_large",
    "ar1",
    "ar10",
    "ar100",
    "ar_small",
    "ar_medium",
    "ar_large",
)
# The library averages precision at these recall points (101-point interpolation).
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass
class CocoInput:
    """Ground truth and detections for one evaluation, already in our conventions.

    ``gt_classes``/``det_classes`` are class indices into ``category_ids``.
    """

    image_ids: Sequence[int]
    image_sizes: Sequence[tuple[int, int]]  # (width, height), same order as image_ids
    gt_image_ids: np.ndarray
    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    det_image_ids: np.ndarray
    det_boxes: np.ndarray
    det_classes: np.ndarray
    det_scores: np.ndarray
    category_ids: Sequence[int]


@dataclass
class CocoMetrics:
    summary: dict[str, float | None]
    # Per class, in class-index order; None where the class has no ground truth.
    ap: list[float | None]
    ap50: list[float | None]
    ap75: list[float | None]
    # Interpolated precision and the score reached at each of RECALL_POINTS, IoU 0.5 and 0.75,
    # per class: [K, 101]; rows of None-able values (-1 in the library means "no ground truth").
    precision50: np.ndarray
    scores50: np.ndarray
    precision75: np.ndarray
    max_recall50: list[float | None]


def corners_to_xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _none_if_missing(value: float) -> float | None:
    """The library writes -1 (and numpy NaN) for "undefined"; JSON gets null instead."""
    value = float(value)
    return None if (np.isnan(value) or value < 0) else value


def _to_coco_dicts(data: CocoInput) -> tuple[dict, list[dict]]:
    categories = [{"id": int(c), "name": str(c)} for c in data.category_ids]
    category_of = np.asarray(data.category_ids, dtype=np.int64)
    images = [
        {"id": int(i), "width": int(w), "height": int(h)}
        for i, (w, h) in zip(data.image_ids, data.image_sizes, strict=True)
    ]
    gt_xywh = corners_to_xywh(data.gt_boxes).tolist()
    gt_cats = category_of[data.gt_classes].tolist() if len(data.gt_classes) else []
    annotations = [
        # COCO uses annotation id 0 as "unmatched": ids start at 1. Area = box area, which sets
        # the small/medium/large bucket (COCO itself uses the mask area here).
        {
            "id": k + 1,
            "image_id": int(img),
            "category_id": int(cat),
            "bbox": box,
            "area": box[2] * box[3],
            "iscrowd": 0,
        }
        for k, (img, cat, box) in enumerate(
            zip(data.gt_image_ids.tolist(), gt_cats, gt_xywh, strict=True)
        )
    ]
    det_xywh = corners_to_xywh(data.det_boxes).tolist()
    det_cats = category_of[data.det_classes].tolist() if len(data.det_classes) else []
    detections = [
        {"image_id": int(img), "category_id": int(cat), "bbox": box, "score": float(score)}
        for img, cat, box, score in zip(
            data.det_image_ids.tolist(),
            det_cats,
            det_xywh,
            data.det_scores.tolist(),
            strict=True,
        )
    ]
    gt = {"images": images, "annotations": annotations, "categories": categories}
    return gt, detections


@contextlib.contextmanager
def _quiet():
    """The library logs (and in some versions prints) progress; the trainer calls us per epoch."""
    logger = logging.getLogger("faster_coco_eval")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(previous)


def compute_coco_metrics(data: CocoInput) -> CocoMetrics:
    from faster_coco_eval import COCO, COCOeval_faster

    num_classes = len(data.category_ids)
    gt_dict, detections = _to_coco_dicts(data)
    with _quiet():
        coco_gt = COCO(gt_dict)
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox")
        evaluator.params.catIds = [int(c) for c in data.category_ids]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = list(evaluator.stats)
    summary = {key: _none_if_missing(v) for key, v in zip(SUMMARY_KEYS, stats, strict=False)}

    # precision: [T iou, R recall, K class, A area, M maxDets]; area "all", maxDets 100.
    precision = np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]
    scores = np.asarray(evaluator.eval["scores"])[:, :, :, 0, -1]
    recall = np.asarray(evaluator.eval["recall"])[:, :, 0, -1]
    iou_thresholds = np.asarray(evaluator.params.iouThrs)
    i50 = int(np.argmin(np.abs(iou_thresholds - 0.5)))
    i75 = int(np.argmin(np.abs(iou_thresholds - 0.75)))

    def mean_defined(values: np.ndarray) -> float | None:
        defined = values[values > -1]
        return float(defined.mean()) if defined.size else None

    return CocoMetrics(
        summary=summary,
        ap=[mean_defined(precision[:, :, k]) for k in range(num_classes)],
        ap50=[mean_defined(precision[i50, :, k]) for k in range(num_classes)],
        ap75=[mean_defined(precision[i75, :, k]) for k in range(num_classes)],
        precision50=precision[i50].T.copy(),
        scores50=scores[i50].T.copy(),
        precision75=precision[i75].T.copy(),
        max_recall50=[_none_if_missing(recall[i50, k]) for k in range(num_classes)],
    )

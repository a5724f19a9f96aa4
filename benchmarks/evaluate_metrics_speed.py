"""How long boxtune's evaluate_detections takes versus the bare COCO library on the same data.

    .venv/bin/python benchmarks/evaluate_metrics_speed.py [--images 200] [--detections 100]

Prints JSON: boxtune (COCO metrics + confusion matrix + TP/FP score distribution + per-class
tables) against a baseline of faster_coco_eval alone (COCO dicts built, evaluate, accumulate,
summarize), median of several repeats each, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np

from boxtune.data.records import BoxAnnotation, DetectionDataset, ImageRecord
from boxtune.detections import Detections
from boxtune.evaluate import evaluate_detections


def make_case(images: int, detections: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    records, annotations, predictions = [], [], {}
    for image_id in range(1, images + 1):
        records.append(ImageRecord(image_id, f"{image_id}.jpg", 640, 640))
        n = int(rng.integers(0, 10))
        xy = rng.uniform(0, 500, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(8, 150, (n, 2))], 1)
        labels = rng.integers(0, classes, n)
        annotations += [
            BoxAnnotation(image_id, tuple(b), int(c) + 1) for b, c in zip(gt, labels, strict=True)
        ]
        m = max(0, detections - n)
        rxy = rng.uniform(0, 500, (m, 2))
        boxes = np.concatenate(
            [
                gt + rng.normal(0, 4, gt.shape),
                np.concatenate([rxy, rxy + rng.uniform(8, 150, (m, 2))], 1),
            ]
        )
        predictions[image_id] = Detections(
            boxes[:detections].astype(np.float32),
            np.concatenate([labels, rng.integers(0, classes, m)])[:detections],
            np.concatenate([rng.uniform(0.4, 1, n), rng.uniform(0, 0.6, m)])[:detections].astype(
                np.float32
            ),
        ).sorted()
    categories = {k + 1: f"class{k}" for k in range(classes)}
    return DetectionDataset(Path("."), records, annotations, categories), predictions


def bare_library(dataset, predictions) -> float:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = {
        "images": [{"id": r.id, "width": r.width, "height": r.height} for r in dataset.images],
        "annotations": [
            {
                "id": k + 1,
                "image_id": a.image_id,
                "category_id": a.category_id,
                "iscrowd": 0,
                "bbox": [a.bbox[0], a.bbox[1], a.bbox[2] - a.bbox[0], a.bbox[3] - a.bbox[1]],
                "area": (a.bbox[2] - a.bbox[0]) * (a.bbox[3] - a.bbox[1]),
            }
            for k, a in enumerate(dataset.annotations)
        ],
        "categories": [{"id": c, "name": n} for c, n in dataset.categories.items()],
    }
    ids = dataset.label_map.category_ids
    res = [
        {
            "image_id": i,
            "category_id": ids[int(c)],
            "score": float(s),
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
        }
        for i, d in predictions.items()
        for b, c, s in zip(d.boxes, d.classes, d.scores, strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt)
        evaluator = COCOeval_faster(coco, coco.loadRes(res), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def timed(fn, repeats: int) -> tuple[float, object]:
    value, times = None, []
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dataset, predictions = make_case(args.images, args.detections, args.classes)
    bare_library(dataset, predictions)  # imports and warms both paths once
    evaluate_detections(dataset, predictions, dataset.label_map)
    baseline_s, baseline_map = timed(lambda: bare_library(dataset, predictions), args.repeats)
    boxtune_s, result = timed(
        lambda: evaluate_detections(dataset, predictions, dataset.label_map), args.repeats
    )
    print(
        json.dumps(
            {
                "benchmark": "evaluate_detections",
                "images": args.images,
                "detections_per_image": args.detections,
                "classes": args.classes,
                "repeats": args.repeats,
                "baseline_faster_coco_eval_s": round(baseline_s, 4),
                "boxtune_evaluate_detections_s": round(boxtune_s, 4),
                "overhead_s": round(boxtune_s - baseline_s, 4),
                "map_baseline": baseline_map,
                "map_boxtune": result.map,
                "same_map": abs(baseline_map - result.map) < 1e-9,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""``boxtune evaluate``: COCO mAP, per-class metrics, speed and an HTML report for a model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from boxtune.commands import add_backend_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a model on a labelled dataset: mAP, per-class AP, speed, HTML report",
        description="Run a model over every image of a dataset (images/ + annotations.json, "
        "local or s3://) and write OUTPUT/metrics.json, a self-contained OUTPUT/report.html "
        "and OUTPUT/plots/*.png: COCO mAP@[.5:.95]/50/75, per-class AP, precision/recall at "
        "the score threshold, PR curves, confusion matrix, score distribution, latency, the "
        "artifact's training history and predictions drawn on images.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="artifact dir, model.tar.gz or s3:// URI written by `boxtune "
        "train`, or a deployable catalog model_id",
    )
    parser.add_argument(
        "--data", required=True, help="dataset folder (images/ + annotations.json), local or s3://"
    )
    parser.add_argument("--output", required=True, help="report folder (local or s3://)")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.5,
        help="detections scoring at least this count for precision, recall, "
        "the confusion matrix and the drawn images (default: %(default)s; "
        "mAP uses every detection)",
    )
    parser.add_argument(
        "--iou-threshold",
        type=float,
        default=0.5,
        help="overlap needed for a match in those counts (default: %(default)s)",
    )
    add_backend_argument(parser)
    parser.add_argument(
        "--grid-images",
        type=int,
        default=16,
        help="validation images drawn in the report (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle)


def _load_model(model_ref: str, backend: str | None) -> tuple[Any, str, list | None]:
    """Runner, a description for the report, and the training history when it is an artifact."""
    from boxtune.model_ref import open_runner

    opened = open_runner(model_ref, backend)
    history = list(opened.artifact.history or []) if opened.artifact is not None else None
    return opened.runner, opened.description, history


def _value(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def summary_lines(result, report_location: str) -> list[str]:
    s, t, speed = result.summary, result.at_threshold, result.speed or {}
    lines = [
        f"mAP@[.5:.95] {_value(s.get('map'))}   mAP50 {_value(s.get('map50'))}   "
        f"mAP75 {_value(s.get('map75'))}   ({result.counts['images']} images, "
        f"{result.counts['ground_truth']} boxes)",
        f"at score >= {t['score_threshold']:g}: precision {_value(t['precision'])}   "
        f"recall {_value(t['recall'])}   F1 {_value(t['f1'])}   "
        f"(TP {t['true_positives']}, FP {t['false_positives']}, missed {t['misses']})",
    ]
    if speed.get("mean_ms") is not None:
        lines.append(
            f"speed: {speed['mean_ms']:.1f} ms/image mean, {speed['p95_ms']:.1f} ms p95, "
            f"{speed['images_per_second']:.1f} images/s (1 image per call, this machine)"
        )
    rows = [c for c in result.per_class if c.ground_truth or c.detections]
    width = max([len("class"), *(len(c.name) for c in rows)])
    lines.append("")
    lines.append(
        f"{'class':<{width}}  {'boxes':>6}  {'AP':>6}  {'AP50':>6}  {'prec':>6}  {'recall':>6}"
    )
    for c in rows:
        lines.append(
            f"{c.name:<{width}}  {c.ground_truth:>6}  {_value(c.ap):>6}  "
            f"{_value(c.ap50):>6}  {_value(c.precision):>6}  {_value(c.recall):>6}"
        )
    hidden = len(result.per_class) - len(rows)
    if hidden:
        lines.append(f"({hidden} classes with neither boxes nor detections not shown)")
    lines.append("")
    lines += [f"warning: {w}" for w in result.warnings()]
    lines.append(f"report: {report_location}")
    return lines


def _handle(args: argparse.Namespace) -> int:
    from boxtune.data import read_dataset
    from boxtune.evaluate import evaluate_model
    from boxtune.storage import check_destination, is_remote

    check_destination(args.output)  # the report is written after minutes of predictions
    dataset = read_dataset(args.data)
    runner, description, history = _load_model(args.model, args.backend)
    result = evaluate_model(
        runner,
        dataset,
        args.output,
        score_threshold=args.score_threshold,
        history=history,
        max_images_in_grid=args.grid_images,
        iou_threshold=args.iou_threshold,
        context={"model": description, "data": args.data, "backend": args.backend},
        progress=not args.no_progress,
    )
    output = str(args.output).rstrip("/")
    remote = is_remote(output)
    location = f"{output}/report.html" if remote else str(Path(output).resolve() / "report.html")
    print("\n".join(summary_lines(result, location)))
    return 0

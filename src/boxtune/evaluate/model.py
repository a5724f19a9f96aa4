"""``evaluate_model``: run a model over a dataset, measure it, write the report directory."""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from boxtune import __version__
from boxtune.data.records import DetectionDataset
from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.errors import DatasetError
from boxtune.evaluate import plots
from boxtune.evaluate.drawing import draw_matches
from boxtune.evaluate.inference import image_path, predict_dataset, read_pixels
from boxtune.evaluate.metrics import EvaluationResult, evaluate_detections
from boxtune.evaluate.report import ReportContent, write_report
from boxtune.storage import is_remote, upload


def pick_grid_images(result: EvaluationResult, image_ids: Sequence[int], count: int) -> list[int]:
    """Half the grid for the images with the most errors, half spread over the rest.

    Only the worst images would paint too dark a picture, only a sample would hide the errors.
    """
    if count <= 0:
        return []
    ids = list(image_ids)
    if len(ids) <= count:
        return ids

    def errors(image_id: int) -> int:
        m = result.image_matches[image_id]
        return len(m.false_positives) + len(m.misses) + len(m.confusions)

    worst = sorted((i for i in ids if errors(i) > 0), key=lambda i: -errors(i))[: count // 2]
    rest = [i for i in ids if i not in set(worst)]
    spread = [rest[int(k)] for k in np.linspace(0, len(rest) - 1, count - len(worst))]
    chosen = set(worst) | set(spread)
    return [i for i in ids if i in chosen]


def _safe_name(index: int, file_name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file_name).stem)[:60]
    return f"{index:03d}_{stem}.png"


def _draw_grid(
    result: EvaluationResult,
    dataset: DetectionDataset,
    predictions: dict[int, Detections],
    score_threshold: float,
    count: int,
) -> list[tuple[str, str, bytes]]:
    names = [c.name for c in result.per_class]
    to_class = {c.category_id: c.index for c in result.per_class}
    by_name = {c.name: c.index for c in result.per_class}
    categories = dict(dataset.categories)
    records = {int(r.id): r for r in dataset.images}
    drawn = []
    for n, image_id in enumerate(pick_grid_images(result, list(records), count)):
        record = records[image_id]
        anns = [a for a in dataset.annotations if a.image_id == image_id]
        gt_boxes = np.array([a.bbox for a in anns], np.float64).reshape(-1, 4)
        gt_classes = np.array(
            [
                to_class.get(a.category_id, by_name.get(categories.get(a.category_id), 0))
                for a in anns
            ],
            np.int64,
        )
        kept = predictions.get(image_id, Detections.empty()).above(score_threshold)
        match = result.image_matches[image_id]
        picture = draw_matches(
            read_pixels(image_path(dataset, record)), gt_boxes, gt_classes, kept, match, names
        )
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=True)
        caption = (
            f"{record.file_name} — TP {len(match.true_positives)} · FP "
            f"{len(match.false_positives) + len(match.confusions)} · missed "
            f"{len(match.misses)}"
        )
        drawn.append((_safe_name(n, record.file_name), caption, buffer.getvalue()))
    return drawn


def evaluate_model(
    runner: Runner,
    dataset: DetectionDataset,
    output_dir: str | Path,
    score_threshold: float = 0.5,
    history: Sequence[dict[str, Any]] | None = None,
    max_images_in_grid: int = 16,
    *,
    iou_threshold: float = 0.5,
    context: dict[str, Any] | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Predict every image of ``dataset`` with ``runner``, evaluate, write the report.

    ``output_dir`` (a local folder, or an ``s3://`` prefix the files are uploaded to) receives
    ``metrics.json``, ``report.html`` (self-contained) and ``plots/*.png``; ``history`` is the
    per-epoch list of the artifact (epoch, loss, val_localization, val_classification, val_map,
    ...). ``context`` adds lines to the report header (model, data, ...).
    """
    if not list(dataset.images):
        raise DatasetError(
            "the dataset holds no images",
            where=str(dataset.root),
            hint="evaluate on a dataset with images/ and annotations.json listing them",
        )
    predictions, speed = predict_dataset(runner, dataset, progress=progress)
    result = evaluate_detections(
        dataset,
        predictions,
        runner.label_map,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
    )
    result.speed = speed

    charts = {
        "ap_per_class": plots.ap_per_class(result),
        "pr_curves": plots.pr_curves(result),
        "confusion_matrix": plots.confusion_matrix(result),
        "score_distribution": plots.score_distribution(result),
    }
    if history:
        chart = plots.training_history(history)
        if chart is not None:
            charts["training_history"] = chart
    header = {
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "boxtune": __version__,
        **(context or {}),
    }
    content = ReportContent(
        plots=charts,
        predictions=_draw_grid(result, dataset, predictions, score_threshold, max_images_in_grid),
        context=header,
    )
    if is_remote(output_dir):
        with tempfile.TemporaryDirectory(prefix="boxtune-report-") as staging:
            write_report(Path(staging), result, content)
            upload(staging, str(output_dir))
    else:
        write_report(Path(output_dir), result, content)
    return result

"""evaluate_model end to end on generated images: files, contents, atomic writes, drawing."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from evaluate_fixtures import FakeRunner
from PIL import Image

from boxtune.detections import Detections
from boxtune.evaluate import evaluate_model
from boxtune.evaluate import report as report_module
from boxtune.evaluate.drawing import FALSE_POSITIVE, MISS, TRUE_POSITIVE, draw_matches
from boxtune.evaluate.matching import match_image
from boxtune.evaluate.model import pick_grid_images
from boxtune.evaluate.plots import training_history


def test_report_directory_holds_metrics_plots_and_pictures(report_dir, sample_dataset):
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["counts"]["images"] == len(sample_dataset.images) == 20
    assert metrics["report"]["model"] == "fake-runner"
    assert 0.2 < metrics["summary"]["map50"] < 1.0  # the fake runner is good, not perfect
    speed = metrics["speed"]
    assert speed["images"] == 20 and speed["p95_ms"] >= speed["p50_ms"] > 0
    assert speed["images_per_second"] > 0
    names = {p.name for p in (report_dir / "plots").glob("*.png")}
    assert names == {
        "ap_per_class.png",
        "pr_curves.png",
        "confusion_matrix.png",
        "score_distribution.png",
        "training_history.png",
    }
    assert len(list((report_dir / "plots" / "predictions").glob("*.png"))) == 16
    assert not list(report_dir.glob(".report-partial-*"))


def test_report_html_is_self_contained(report_dir):
    html = (report_dir / "report.html").read_text()
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", html)
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == 5 + 16
    for uri in sources:
        assert uri.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as img:
            assert img.format == "PNG" and img.width > 100
    for text in ("mAP@[.5:.95]", "triangle", "Confusion matrix", "p95 latency", "Training history"):
        assert text in html


def test_runner_is_warmed_up_once_and_called_per_image(sample_dataset, tmp_path):
    runner = FakeRunner(sample_dataset)
    subset = sample_dataset.subset([r.id for r in sample_dataset.images[:5]])
    result = evaluate_model(runner, subset, tmp_path / "out", progress=False, max_images_in_grid=3)
    assert runner.calls == 5 + 1
    assert result.speed["images"] == 5
    assert len(list((tmp_path / "out" / "plots" / "predictions").glob("*.png"))) == 3
    assert not (tmp_path / "out" / "plots" / "training_history.png").exists()


def test_failed_write_keeps_previous_report(sample_dataset, tmp_path, monkeypatch):
    subset = sample_dataset.subset([r.id for r in sample_dataset.images[:4]])
    output = tmp_path / "out"
    evaluate_model(FakeRunner(subset), subset, output, progress=False)
    before = (output / "report.html").read_bytes(), (output / "metrics.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "render_html", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        evaluate_model(
            FakeRunner(subset, seed=5), subset, output, progress=False, score_threshold=0.3
        )
    after = (output / "report.html").read_bytes(), (output / "metrics.json").read_bytes()
    assert after == before
    assert not list(output.glob(".report-partial-*"))


def test_rerun_replaces_pictures_of_the_previous_run(sample_dataset, tmp_path):
    output = tmp_path / "out"
    evaluate_model(FakeRunner(sample_dataset), sample_dataset, output, progress=False)
    small = sample_dataset.subset([r.id for r in sample_dataset.images[:2]])
    evaluate_model(FakeRunner(small), small, output, progress=False)
    assert len(list((output / "plots" / "predictions").glob("*.png"))) == 2


def test_drawn_colours_mark_hits_false_detections_and_misses():
    pixels = np.full((200, 300, 3), 128, np.uint8)
    gt_boxes = np.array([[10, 10, 90, 90], [200, 100, 280, 180]], float)
    gt_classes = np.array([0, 1])
    det = Detections(
        np.array([[12, 12, 88, 90], [120, 20, 180, 80]], np.float32),
        np.array([0, 1]),
        np.array([0.9, 0.7], np.float32),
    )
    match = match_image(gt_boxes, gt_classes, det.boxes, det.classes, det.scores)
    picture = np.asarray(
        draw_matches(pixels, gt_boxes, gt_classes, det, match, ["a", "b"], max_side=300)
    )

    def has(colour, box) -> bool:
        x0, y0, x1, y1 = box
        edge = picture[y0:y1, x0:x1].reshape(-1, 3)
        return bool((np.abs(edge.astype(int) - colour).sum(axis=1) < 30).any())

    assert has(TRUE_POSITIVE, (10, 40, 16, 60))  # left edge of the hit
    assert has(FALSE_POSITIVE, (117, 40, 124, 60))  # left edge of the false detection
    assert has(MISS, (196, 120, 204, 160))  # left edge of the missed box, dashed
    assert not has(MISS, (10, 40, 16, 60))


def test_grid_mixes_worst_images_with_a_spread_of_the_rest(sample_dataset):
    runner = FakeRunner(sample_dataset)
    from boxtune.evaluate import evaluate_detections

    preds = {r.id: runner.predict([_pixels(sample_dataset, r)])[0] for r in sample_dataset.images}
    result = evaluate_detections(sample_dataset, preds, sample_dataset.label_map)
    ids = [r.id for r in sample_dataset.images]
    chosen = pick_grid_images(result, ids, 8)
    assert len(chosen) == 8 and chosen == sorted(chosen, key=ids.index)

    def errors(i):
        m = result.image_matches[i]
        return len(m.false_positives) + len(m.misses) + len(m.confusions)

    worst = max(ids, key=errors)
    assert worst in chosen
    assert (
        pick_grid_images(result, ids, 0) == [] and pick_grid_images(result, ids[:3], 8) == ids[:3]
    )


def _pixels(dataset, record):
    from boxtune.evaluate.inference import image_path, read_pixels

    return read_pixels(image_path(dataset, record))


def test_history_plot_needs_numbers():
    assert training_history([{"epoch": 0, "note": "x"}]) is None
    png = training_history(
        [{"epoch": 0, "loss": 1.0, "val_map": float("nan")}, {"epoch": 1, "loss": 0.5}]
    )
    assert png is not None and png.startswith(b"\x89PNG")


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(sample_dataset, tmp_path):
    output = tmp_path / "out"
    leftover = output / ".report-partial-killed" / "plots"
    leftover.mkdir(parents=True)
    (leftover / "pr_curve.png").write_bytes(b"half")
    subset = sample_dataset.subset([r.id for r in sample_dataset.images[:2]])
    evaluate_model(FakeRunner(subset), subset, output, progress=False)
    assert not list(output.glob(".report-partial-*"))
    assert (output / "report.html").is_file()

"""``boxtune predict`` over real folders (and an S3 server), with the fake runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_fakes import FakeRunner, encode, scene
from serve_process import SERVE_TESTS_DIR

from boxtune.errors import BoxtuneError
from boxtune.serve.batch import SUMMARY_NAME, predict_folder
from boxtune.serve.predictor import InProcessPredictor

FAKE = "py:serve_fakes:make_runner"


def _make_inputs(root: Path) -> dict[str, bytes]:
    files = {
        "a.png": encode(scene(120, 90, {0: (10, 10, 60, 50)}, seed=1)),
        "b.jpg": encode(scene(100, 80, {1: (20, 20, 70, 60)}, seed=2), "JPEG", quality=95),
        "nested/c.png": encode(scene(64, 64, {2: (5, 5, 30, 30)}, seed=3)),
        "broken.png": encode(scene(64, 64, seed=4))[:100],
        "notes.txt": b"not an image, not even tried",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(SERVE_TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    return subprocess.run(
        [sys.executable, "-m", "boxtune.cli", "predict", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_predict_cli_writes_verbose_answers_and_skips_bad_images(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    files = _make_inputs(inputs)
    result = _run_cli(
        "--model",
        FAKE,
        "--input",
        str(inputs),
        "--output",
        str(outputs),
        "--visualize",
        "--min-score",
        "0.5",
    )
    assert result.returncode == 1, result.stderr  # one image failed
    assert "3 predicted, 0 skipped (already done), 1 failed, of 4 images" in result.stdout
    assert "broken.png" in result.stderr and "truncated PNG" in result.stderr
    predictor = InProcessPredictor(FakeRunner())
    for rel in ("a.png", "b.jpg", "nested/c.png"):
        written = json.loads((outputs / f"{rel}.out").read_text())
        wanted, _ = predictor.predict_bytes(files[rel], "application/json;verbose")
        assert written == json.loads(json.dumps(wanted))
        drawn = np.asarray(Image.open(outputs / "visualizations" / f"{rel}.png"))
        assert drawn.shape[:2] == Image.open(inputs / rel).size[::-1]
        assert not np.array_equal(drawn, np.asarray(Image.open(inputs / rel).convert("RGB")))
    assert not (outputs / "broken.png.out").exists()
    assert not list(outputs.rglob("*.tmp"))
    summary = json.loads((outputs / SUMMARY_NAME).read_text())
    assert summary["failed"] == 1 and "broken.png" in summary["failures"]


def test_predict_resumes_and_only_retries_missing_outputs(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    _make_inputs(inputs)
    (inputs / "broken.png").unlink()
    runner = FakeRunner()
    first = predict_folder(InProcessPredictor(runner), str(inputs), str(outputs), progress=False)
    assert (first.done, first.skipped, first.failed) == (3, 0, 0)
    before = (outputs / "a.png.out").stat().st_mtime_ns
    (outputs / "b.jpg.out").unlink()
    runner.batch_sizes.clear()
    second = predict_folder(InProcessPredictor(runner), str(inputs), str(outputs), progress=False)
    assert (second.done, second.skipped, second.failed) == (1, 2, 0)
    assert sum(runner.batch_sizes) == 1
    assert (outputs / "a.png.out").stat().st_mtime_ns == before
    assert (outputs / "b.jpg.out").exists()


def test_visualization_draws_the_box_where_the_object_is(tmp_path):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "one.png").write_bytes(encode(scene(200, 160, {2: (50, 40, 150, 120)}, seed=5)))
    predict_folder(
        InProcessPredictor(FakeRunner()),
        str(inputs),
        str(outputs),
        visualize=True,
        min_score=0.5,
        progress=False,
    )
    drawn = np.asarray(Image.open(outputs / "visualizations" / "one.png.png")).astype(int)
    original = np.asarray(Image.open(inputs / "one.png")).astype(int)
    changed = np.abs(drawn - original).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    # outline around (50, 40)-(150, 120) plus its caption just above the box
    assert xs.min() >= 45 and xs.max() <= 155
    assert ys.max() <= 125 and ys.min() >= 10
    assert changed[80, 49:52].any() and changed[80, 148:152].any()  # left and right edges


def test_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _run_cli(
        "--model", FAKE, "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "out")
    )
    assert result.returncode == 1
    assert "no images in" in result.stderr and "hint:" in result.stderr


def test_predict_from_and_to_s3(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    from boxtune.storage import filesystem, upload

    inputs = tmp_path / "in"
    _make_inputs(inputs)
    (inputs / "broken.png").unlink()
    upload(inputs, "s3://bucket/images")
    first = predict_folder(
        InProcessPredictor(FakeRunner()), "s3://bucket/images", "s3://bucket/preds", progress=False
    )
    assert (first.done, first.failed) == (3, 0)
    fs, _ = filesystem("s3://bucket/preds")
    keys = sorted(p.split("bucket/preds/")[1] for p in fs.find("bucket/preds"))
    assert keys == ["a.png.out", "b.jpg.out", "nested/c.png.out", SUMMARY_NAME]
    second = predict_folder(
        InProcessPredictor(FakeRunner()), "s3://bucket/images", "s3://bucket/preds", progress=False
    )
    assert (second.done, second.skipped) == (0, 3)


def test_output_inside_the_input_is_not_read_back_as_input(tmp_path):
    inputs = tmp_path / "in"
    _make_inputs(inputs)
    (inputs / "broken.png").unlink()
    outputs = inputs / "predictions"
    for _ in range(2):
        summary = predict_folder(
            InProcessPredictor(FakeRunner()),
            str(inputs),
            str(outputs),
            visualize=True,
            progress=False,
        )
        assert summary.total == 3
    assert summary.skipped == 3


def test_missing_input_folder(tmp_path):
    with pytest.raises(BoxtuneError, match="does not exist"):
        predict_folder(
            InProcessPredictor(FakeRunner()), str(tmp_path / "nope"), str(tmp_path / "out")
        )

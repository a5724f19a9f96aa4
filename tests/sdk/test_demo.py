"""`boxtune demo` end to end with tiny settings (the real run uses more images and epochs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from boxtune import jobs


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, boxtune_home):
    output = tmp_path / "demo-output"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "boxtune.cli",
            "demo",
            "--output",
            str(output),
            "--images",
            "12",
            "--test-images",
            "4",
            "--epochs",
            "1",
            "--image-size",
            "64",
        ],
        env={**os.environ, "BOXTUNE_HOME": str(boxtune_home)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = run.stdout
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in text
    assert "[Epoch 0], Speed:" in text  # the training log streamed through Estimator.fit
    assert "mAP@[.5:.95]" in text and "mAP50" in text
    for name in ("circle", "triangle", "square", "star"):
        assert name in text
    assert '"normalized_boxes": [[' in text
    assert "boxtune data fetch pennfudan" in text

    assert (output / "evaluation" / "report.html").is_file()
    metrics = json.loads((output / "evaluation" / "metrics.json").read_text())
    assert "summary" in metrics or "map" in json.dumps(metrics)
    png = Image.open(output / "prediction.png")
    assert png.format == "PNG" and png.size[0] > 0

    (job,) = jobs.list_jobs()
    assert job.status == "completed" and job.name.startswith("boxtune-demo")
    assert all(e.status == "stopped" for e in jobs.list_endpoints())

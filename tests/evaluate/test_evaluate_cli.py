"""``boxtune evaluate`` as users run it: a real process, local folders, and S3 in and out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from evaluate_fixtures import write_shapes_dataset

from boxtune.cli import main

HERE = Path(__file__).resolve().parent
FAKE = "py:evaluate_fixtures:fake_runner_from_env"


def _env(data: Path) -> dict[str, str]:
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "EVALUATE_TEST_DATA": str(data)}


def test_cli_prints_summary_and_writes_report(tmp_path):
    data = write_shapes_dataset(tmp_path / "data", images=8, seed=4)
    output = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "boxtune.cli",
            "evaluate",
            "--model",
            FAKE,
            "--data",
            str(data),
            "--output",
            str(output),
            "--score-threshold",
            "0.4",
            "--no-progress",
        ],
        env=_env(data),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "mAP@[.5:.95]" in out and "mAP50" in out and "ms/image" in out
    for name in ("circle", "square", "triangle"):
        assert f"\n{name}" in out
    assert f"report: {output.resolve() / 'report.html'}" in out
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["at_threshold"]["score_threshold"] == 0.4
    assert metrics["report"]["model"].endswith("(custom runner)")
    assert f"{metrics['summary']['map']:.3f}" in out


def test_cli_reports_bad_inputs_clearly(tmp_path, capsys):
    data = write_shapes_dataset(tmp_path / "data", images=2, seed=1)
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "nope" / "model.tar.gz"),
            "--data",
            str(data),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "no model artifact" in err and "hint:" in err
    code = main(
        [
            "evaluate",
            "--model",
            FAKE,
            "--data",
            str(tmp_path / "missing"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1 and "missing" in capsys.readouterr().err


def test_cli_reads_and_writes_s3(tmp_path, monkeypatch, capsys):
    pytest.importorskip("moto")
    monkeypatch.syspath_prepend(str(HERE.parents[1]))
    from tests.s3_server import S3Server, s3_environment

    data = write_shapes_dataset(tmp_path / "data", images=5, seed=2)
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("EVALUATE_TEST_DATA", str(data))
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    with S3Server() as server, s3_environment(server):
        bucket = server.create_bucket("eval")
        client = server.client()
        for path in data.rglob("*"):
            if path.is_file():
                client.upload_file(str(path), bucket, f"ds/{path.relative_to(data)}")
        code = main(
            [
                "evaluate",
                "--model",
                FAKE,
                "--data",
                f"s3://{bucket}/ds",
                "--output",
                f"s3://{bucket}/reports/run1",
                "--no-progress",
            ]
        )
        assert code == 0, capsys.readouterr().err
        keys = server.keys(bucket, "reports/run1/")
    assert "report: s3://eval/reports/run1/report.html" in capsys.readouterr().out
    assert {
        "reports/run1/report.html",
        "reports/run1/metrics.json",
        "reports/run1/plots/confusion_matrix.png",
    } <= set(keys)

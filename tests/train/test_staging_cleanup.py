"""What a killed run leaves half-written in its output is removed when the next run starts.

The first test kills a real ``boxtune train`` process (SIGKILL, torch engine) while it writes
the artifact and resumes it; the others drive the loop with the scripted engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fake_engine import FakeEngine, install
from tests.train.train_processes import start_and_kill_when, train_cli

from boxtune.artifacts import MANIFEST_FILE, load_artifact
from boxtune.catalog import DEFAULT_MODEL_ID
from boxtune.errors import TrainingError
from boxtune.train import train

TINY_HP = {"image_size": 64, "batch_size": 8, "augmentation": "False", "num_workers": 0}
FAKE_HP = {**TINY_HP, "batch_size": 4, "epochs": 1}


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process that is alive for the whole test (another run's writer)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: the pid names no process now
    return process.pid


def _hidden(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(".*"))


def _kill_while_writing_the_artifact(args: list[str], output: Path, env: dict) -> int:
    """Start ``boxtune train`` and SIGKILL it once its artifact's temp dir appears; its pid."""
    process = start_and_kill_when(
        args,
        env,
        lambda: bool(list(output.glob("..artifact-staging.partial-*"))),
        timeout_s=300,
        what="artifact written",
    )
    return process.pid


def test_a_run_killed_while_writing_its_artifact_resumes_without_leftovers(
    tiny_dataset, tmp_path, live_pid
):
    output = tmp_path / "out"
    args = ["--model-id", DEFAULT_MODEL_ID, "--training", str(tiny_dataset)]
    args += ["--output", str(output), "--quiet"]
    args += [item for k, v in {**TINY_HP, "epochs": 1}.items() for item in ("--hp", f"{k}={v}")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = _kill_while_writing_the_artifact(args, output, env)
    (partial,) = output.glob("..artifact-staging.partial-*")
    assert not (output / MANIFEST_FILE).exists()
    # A checkpoint write the same kill could have cut short (the killed pid), and one of a
    # writer that is still alive: only the first is stale.
    checkpoints = output / "checkpoints"
    (checkpoints / f".last.pt.{killed}.partial").write_bytes(b"half a checkpoint")
    (checkpoints / f".best.pt.{live_pid}.partial").write_bytes(b"being written")

    resumed = subprocess.run(
        train_cli(*args, "--resume"), capture_output=True, text=True, env=env, timeout=300
    )

    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"note: removed what an interrupted run left half-written in {output}: {partial.name}, "
        f"checkpoints/.last.pt.{killed}.partial" in resumed.stdout.splitlines()
    )
    assert _hidden(output) == [f"checkpoints/.best.pt.{live_pid}.partial"]
    artifact = load_artifact(output)  # complete, every hash verified
    assert artifact.metrics["epochs_completed"] == 1
    load_artifact(output / "model.tar.gz")


def _leave_what_a_killed_run_leaves(output: Path, dead: int, live: int) -> None:
    """The staging paths a run killed at each write leaves (as the writers name them)."""
    leftovers = {
        ".artifact-staging/fake-weights.json": "moved halfway",
        "..artifact-staging.partial-k2j4x9_a/fake-weights.json": "exported halfway",
        "..artifact-staging.old-q1w2e3r4/previous/x": "renamed aside",
        ".metrics.jsonl.0a1b2c3d.tmp": "half a line",
        f"checkpoints/.last.{dead}.partial/state.json": "{",
        "checkpoints/.best.old-abcd1234/previous/state.json": "{}",
    }
    for name, text in leftovers.items():
        (output / name).parent.mkdir(parents=True, exist_ok=True)
        (output / name).write_text(text)
    (output / "checkpoints" / f".last.{live}.partial").mkdir()


def _run(monkeypatch, dataset, output, **kwargs) -> list[str]:
    install(monkeypatch, FakeEngine())
    lines: list[str] = []
    train(
        DEFAULT_MODEL_ID, dataset, None, output, FAKE_HP, log=lines.append, progress=False, **kwargs
    )
    return lines


def test_resume_removes_every_kind_of_leftover_and_nothing_else(
    monkeypatch, tiny_dataset, tmp_path, live_pid
):
    output = tmp_path / "out"
    _run(monkeypatch, tiny_dataset, output)
    dead = _dead_pid()
    _leave_what_a_killed_run_leaves(output, dead, live_pid)
    (output / ".notes").write_text("the user's own")
    (output / "checkpoints" / ".keep").write_text("the user's own")

    lines = _run(monkeypatch, tiny_dataset, output, resume=True)

    assert (
        f"note: removed what an interrupted run left half-written in {output}: "
        "..artifact-staging.old-q1w2e3r4, ..artifact-staging.partial-k2j4x9_a, "
        ".artifact-staging, .metrics.jsonl.0a1b2c3d.tmp, checkpoints/.best.old-abcd1234, "
        f"checkpoints/.last.{dead}.partial"
    ) in lines
    assert _hidden(output) == [
        ".notes",
        "checkpoints/.keep",
        f"checkpoints/.last.{live_pid}.partial",
    ]
    load_artifact(output)


def test_a_fresh_run_into_a_new_output_starts_clean(monkeypatch, tiny_dataset, tmp_path):
    output = tmp_path / "out"
    (output / "..artifact-staging.partial-abc").mkdir(parents=True)
    lines = _run(monkeypatch, tiny_dataset, output)
    assert _hidden(output) == []
    assert any(line.startswith("note: removed what an interrupted run") for line in lines)


def test_a_refused_second_run_removes_nothing(monkeypatch, tiny_dataset, tmp_path, live_pid):
    # Without --resume the output's run may still be going: its staging is left alone.
    output = tmp_path / "out"
    _run(monkeypatch, tiny_dataset, output)
    _leave_what_a_killed_run_leaves(output, _dead_pid(), live_pid)
    before = _hidden(output)
    with pytest.raises(TrainingError, match="already holds a training run"):
        _run(monkeypatch, tiny_dataset, output)
    assert _hidden(output) == before

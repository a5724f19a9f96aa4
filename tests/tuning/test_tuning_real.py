"""`boxtune tune` for real: the default model trained on the sample dataset by background jobs.

Trainings are tiny (12 images of 128 px, a few epochs: ~15 s a job on 2 cores) so that the
file runs in a few minutes. The pruned trial is chosen so that the decision cannot depend on
timing: a learning rate of 0.1 makes the first epoch's localization loss about 4.0 where the
default's is about 1.3, and that trial only starts once another one has completed.
The acceptance run here is a smaller copy of the full-size one (6 trials of 10 epochs, 2 at a
time, validation mAP), which benchmarks/tune_sample.py runs with a JSON report: 4 trials of 8
epochs, still two at a time, so that trials 2 and 3 may be pruned by the median of the first
pair.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from boxtune import jobs
from boxtune.catalog import DEFAULT_MODEL_ID
from boxtune.cli import main as cli_main
from boxtune.jobs import processes
from boxtune.tuning import (
    ContinuousRange,
    Objective,
    TuningSpec,
    load_tuning,
    run_tuning,
    stop_tuning,
)

pytestmark = pytest.mark.slow

ACCEPTANCE_TRIALS = 4
ACCEPTANCE_EPOCHS = 8
TINY = ["epochs=8", "image_size=128", "batch_size=4", "num_workers=0", "warmup_epochs=0"]


def hp_flags(values: list[str]) -> list[str]:
    return [part for value in values for part in ("--hp", value)]


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def mapped_dataset(tmp_path_factory) -> Path:
    """40 images: enough for 8 epochs at 128 px to reach a validation mAP above 0."""
    from boxtune.data import generate_sample_dataset

    return generate_sample_dataset(
        tmp_path_factory.mktemp("tune-map") / "sample", images=40, seed=3
    )


def test_acceptance_trials_find_a_learning_rate_at_least_as_good_as_the_default(
    mapped_dataset, tmp_path, capsys
):
    code = cli_main(
        [
            "tune",
            "--training", str(mapped_dataset),
            "--output-path", str(tmp_path / "out"),
            "--name", "acceptance",
            "--range", "learning_rate=0.0001:0.1:log",
            *hp_flags(
                [f"epochs={ACCEPTANCE_EPOCHS}", "image_size=128", "batch_size=4", "num_workers=0"]
            ),
            "--objective", "val_map",
            "--strategy", "Bayesian",
            "--max-jobs", str(ACCEPTANCE_TRIALS),
            "--max-parallel-jobs", "2",
            "--early-stopping", "Auto",
            "--seed", "0",
            "--json",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "Completed" and len(result["trials"]) == ACCEPTANCE_TRIALS
    baseline = result["trials"][0]
    assert baseline["baseline"] and baseline["hyperparameters"]["learning_rate"] == "0.002"
    # The median rule needs two completed trials: the first pair (the baseline in it) completes.
    assert baseline["state"] == "Completed" and baseline["objective_value"] > 0
    best = result["best"]
    assert best["objective_value"] >= baseline["objective_value"]
    records = [jobs.get_job(t["job_name"]) for t in result["trials"]]
    assert all(r.source == "tuning" and r.status in ("completed", "stopped") for r in records)
    for trial, job in zip(result["trials"], records, strict=True):
        if trial["state"] == "Pruned":  # pruned trials stop early, and their logs say so
            assert job.status == "stopped" and len(job.metrics) < ACCEPTANCE_EPOCHS
            log = Path(job.log_path).read_text()
            assert f"[Tuner] trial {trial['number']} pruned after epoch " in log
        else:
            assert trial["state"] == "Completed" and len(job.metrics) == ACCEPTANCE_EPOCHS


def test_tune_cli_prunes_a_bad_learning_rate_and_keeps_the_best(
    sample_dataset, tmp_path, boxtune_home, capsys
):
    code = cli_main(
        [
            "tune",
            "--training", str(sample_dataset),
            "--output-path", str(tmp_path / "out"),
            "--name", "lr-prune",
            "--range", "learning_rate=0.0001:0.1:log",
            *hp_flags(TINY),
            "--objective", "validation:localization_loss",
            "--max-jobs", "3",
            "--max-parallel-jobs", "2",
            "--early-stopping", "Auto",
            "--pruner-startup-trials", "1",
            "--enqueue", "learning_rate=0.001",
            "--enqueue", "learning_rate=0.1",
            "--seed", "0",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[tune] trial 0 (baseline: the defaults) started: learning_rate=0.002" in err
    assert "[tune] trial 2 pruned after epoch 0: validation:localization_loss = " in err
    assert "TRIAL  JOB" in out and "Pruned" in out and "best: trial " in out

    result = load_tuning("lr-prune")
    assert result.status == "Completed"
    baseline, second, bad = result.trials
    assert baseline.baseline and baseline.hyperparameters["learning_rate"] == "0.002"
    assert second.hyperparameters["learning_rate"] == "0.001"
    # Trials 0 and 1 run side by side: whichever ends second may be pruned by the first.
    assert {baseline.state, second.state} <= {"Completed", "Pruned"}
    assert "Completed" in {baseline.state, second.state}

    assert bad.hyperparameters["learning_rate"] == "0.1"
    assert bad.state == "Pruned" and bad.pruned_after_epoch == 0
    assert bad.objective_value > 2 * result.best.objective_value
    job = jobs.get_job(bad.job_name)
    assert job.status == "stopped"
    assert 1 <= len(job.metrics) < 8  # stopped early
    assert not Path(job.model_data).exists()
    assert cli_main(["jobs", "logs", bad.job_name]) == 0
    log = capsys.readouterr().out
    assert "[Tuner] trial 2 pruned after epoch 0: validation:localization_loss = " in log
    assert "is worse than the median" in log

    best = result.best
    assert best.number in (0, 1)
    assert Path(jobs.get_job(best.job_name).model_data).is_file()
    if baseline.state == "Completed":
        assert best.objective_value <= baseline.objective_value

    # Another process reads the same study from the SQLite file beside the registry.
    env = {**os.environ, "BOXTUNE_HOME": str(boxtune_home)}
    shown = subprocess.run(
        [sys.executable, "-m", "boxtune.cli", "tune", "show", "lr-prune", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(shown.stdout)
    assert [t["state"] for t in seen["trials"]] == [t.state for t in result.trials]
    assert seen["best"]["job_name"] == best.job_name
    assert seen["storage_url"] == f"sqlite:///{boxtune_home / 'tuning.db'}"


def test_detached_tuning_reports_per_epoch_and_stops(sample_dataset, tmp_path):
    spec = TuningSpec(
        "detached",
        training=str(sample_dataset),
        output_path=str(tmp_path / "out"),
        objective=Objective("val_loss", "minimize"),
        model_id=DEFAULT_MODEL_ID,
        hyperparameters=dict(v.split("=") for v in [*TINY[1:], "epochs=60"]),
        ranges={"learning_rate": ContinuousRange(0.0001, 0.1)},
        max_jobs=3,
    )
    started = run_tuning(spec, wait=False)
    assert started.status == "InProgress" and Path(started.driver_log).parent.is_dir()

    def reported():
        trials = load_tuning("detached").trials
        return trials and trials[0].state == "Running" and trials[0].intermediate

    wait_until(reported, 120, "trial 0 to report an epoch")  # the driver is another process
    stop_tuning("detached")
    result = load_tuning("detached")
    assert result.status == "Stopped"
    assert [t.state for t in result.trials] == ["Stopped"]  # no new trial after the stop
    job = jobs.get_job(result.trials[0].job_name)
    assert job.status == "stopped"
    assert len(job.metrics) < 60
    driver_log = Path(result.driver_log).read_text()
    assert "trial 0 stopped" in driver_log and "tuning job detached stopped" in driver_log


def test_ctrl_c_in_the_foreground_stops_the_running_trial(sample_dataset, tmp_path, boxtune_home):
    env = {**os.environ, "BOXTUNE_HOME": str(boxtune_home)}
    command = [
        sys.executable, "-m", "boxtune.cli", "tune",
        "--training", str(sample_dataset),
        "--output-path", str(tmp_path / "out"),
        "--name", "foreground",
        "--range", "learning_rate=0.0001:0.1",
        *hp_flags([*TINY[1:], "epochs=60"]),
        "--max-jobs", "2",
    ]  # fmt: skip
    tuner = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        job = wait_until(
            lambda: next((j for j in jobs.list_jobs() if j.status == "running"), None),
            60,
            "the first trial's job to run",
        )
        tuner.send_signal(signal.SIGINT)
        _, err = tuner.communicate(timeout=90)
    finally:
        if tuner.poll() is None:
            tuner.kill()
    assert tuner.returncode == 130, err
    assert "interrupted: stopping the running trials" in err
    stopped = jobs.get_job(job.name)
    assert stopped.status == "stopped"
    assert not processes.is_alive(stopped.pid, stopped.pid_started)
    result = load_tuning("foreground")
    assert result.status == "Stopped"
    assert [t.state for t in result.trials] == ["Stopped"]

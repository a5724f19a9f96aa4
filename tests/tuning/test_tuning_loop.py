"""The tuning loop with real background jobs (registry, supervisor, signals) and real Optuna,
the trainer replaced by a stand-in whose values depend on the hyperparameters only, so the
outcome of every trial is known in advance. A few seconds per test."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boxtune import jobs
from boxtune.catalog import DEFAULT_MODEL_ID
from boxtune.tuning import (
    CategoricalRange,
    ContinuousRange,
    Objective,
    TuningSpec,
    load_tuning,
    run_tuning,
)

LOCALIZATION = Objective("validation:localization_loss", "minimize", r"Val_localization=([0-9\.]+)")


TEXT = {"capture_output": True, "text": True, "check": True}


def spec_for(tmp_path, name: str, **changes) -> TuningSpec:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    values = dict(
        training=str(data),
        output_path=str(tmp_path / "out"),
        objective=LOCALIZATION,
        model_id=DEFAULT_MODEL_ID,
        hyperparameters={"epochs": "12"},
        ranges={"learning_rate": ContinuousRange(0.0001, 0.9)},
        max_jobs=3,
        max_parallel_jobs=2,
        seed=0,
    )
    values.update(changes)
    return TuningSpec(name, **values)


def max_concurrent(records: list[jobs.JobRecord]) -> int:
    events = sorted(
        [(j.started_at, 1) for j in records] + [(j.ended_at, -1) for j in records],
        key=lambda e: (e[0], e[1]),
    )
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_pruning_stops_the_worse_trial_and_its_log_says_so(tmp_path, fake_submit):
    # Trial 0 is the baseline (the default learning rate), trial 1 the best value; trial 2 (a
    # bad one) starts when one of them has completed, and is worse at its very first epoch.
    lines: list[str] = []
    spec = spec_for(
        tmp_path,
        "prune",
        early_stopping=True,
        pruner_startup_trials=1,
        enqueue=[{"learning_rate": "0.01"}, {"learning_rate": "0.5"}],
        metric_definitions=[{"Name": "validation:mAP", "Regex": r"Val_mAP=([0-9\.]+)"}],
    )
    result = run_tuning(spec, log=lines.append, submit=fake_submit)

    assert result.status == "Completed"
    baseline, best, bad = result.trials
    assert baseline.baseline and baseline.hyperparameters == {
        "epochs": "12",
        "learning_rate": "0.002",
    }
    assert best.hyperparameters["learning_rate"] == "0.01"
    assert [t.state for t in result.trials] == ["Completed", "Completed", "Pruned"]
    assert result.best.number == 1
    assert result.best.objective_value == pytest.approx(1 / 12, abs=1e-4)
    assert sorted(best.intermediate) == list(range(12))
    assert best.metrics["validation:mAP"] == pytest.approx(1 / (1 + 1 / 12), abs=1e-4)

    assert bad.pruned_after_epoch == 0 and list(bad.intermediate) == [0]
    job = jobs.get_job(bad.job_name)
    assert job.status == "stopped" and job.source == "tuning"
    assert len(job.metrics) < 12  # stopped early
    assert "early-stopped by tuning job prune: trial 2 pruned after epoch 0" in job.failure_reason
    log = Path(job.log_path).read_text()
    tuner_line = next(line for line in log.splitlines() if line.startswith("[Tuner]"))
    assert tuner_line.startswith(
        "[Tuner] trial 2 pruned after epoch 0: validation:localization_loss = 2.6990 is worse "
        "than the median"
    )
    assert log.index("[Tuner]") < log.index("stopped after")  # written before the stop
    assert any(line.startswith("trial 2 pruned after epoch 0") for line in lines)
    assert max_concurrent([jobs.get_job(t.job_name) for t in result.trials]) <= 2


def test_failed_and_unreadable_trials_fail_and_the_study_goes_on(tmp_path, fake_submit):
    spec = spec_for(
        tmp_path,
        "failures",
        hyperparameters={"epochs": "2"},
        ranges={"optimizer": CategoricalRange(("adam", "sgd", "rmsprop"))},
        enqueue=[{"optimizer": "sgd"}, {"optimizer": "rmsprop"}],
        max_jobs=3,
        max_parallel_jobs=1,
    )
    result = run_tuning(spec, submit=fake_submit)
    assert result.status == "Completed"
    by_optimizer = {t.hyperparameters["optimizer"]: t for t in result.trials}
    assert by_optimizer["adam"].state == "Completed" and by_optimizer["adam"].baseline
    failed = by_optimizer["sgd"]
    assert failed.state == "Failed"
    assert "annotation 3: bbox has xmax < xmin" in failed.failure_reason  # the job's reason
    silent = by_optimizer["rmsprop"]
    assert silent.state == "Failed"
    assert silent.failure_reason == (
        "the job's log has no match of the objective regex 'Val_localization=([0-9\\\\.]+)'"
    )
    assert jobs.get_job(silent.job_name).status == "completed"  # the job itself was fine
    assert result.best.hyperparameters["optimizer"] == "adam"


def test_all_trials_failing_fails_the_tuning_job(tmp_path, fake_submit):
    spec = spec_for(
        tmp_path,
        "hopeless",
        hyperparameters={"optimizer": "sgd", "epochs": "2"},
        max_jobs=2,
    )
    result = run_tuning(spec, submit=fake_submit)
    assert result.status == "Failed"
    assert result.failure_reason.startswith("all 2 trials failed; trial 0: training failed")
    assert result.best is None


def test_metrics_jsonl_objective_and_parallel_slots(tmp_path, fake_submit):
    spec = spec_for(
        tmp_path,
        "jsonl",
        objective=Objective("val_map", "maximize"),
        hyperparameters={"epochs": "4"},
        max_jobs=4,
        max_parallel_jobs=2,
        strategy="Random",
    )
    result = run_tuning(spec, submit=fake_submit)
    assert [t.state for t in result.trials] == ["Completed"] * 4
    for trial in result.trials:
        lr = float(trial.hyperparameters["learning_rate"])
        expected = 1 / (1 + abs(math.log10(lr) + 2) + 1 / 4)
        assert trial.objective_value == pytest.approx(expected, rel=1e-6)  # unrounded
        assert jobs.get_job(trial.job_name).hyperparameters == trial.hyperparameters
    records = [jobs.get_job(t.job_name) for t in result.trials]
    assert max_concurrent(records) == 2  # two at a time, never more


def test_ctrl_c_stops_the_running_trials(tmp_path, fake_submit):
    def interrupt_on_second_start(message: str) -> None:
        if message.startswith("trial 1 started"):
            raise KeyboardInterrupt

    spec = spec_for(tmp_path, "interrupted", hyperparameters={"epochs": "200"}, max_jobs=4)
    with pytest.raises(KeyboardInterrupt):
        run_tuning(spec, log=interrupt_on_second_start, submit=fake_submit)
    result = load_tuning("interrupted")
    assert result.status == "Stopped"
    assert [t.state for t in result.trials] == ["Stopped", "Stopped"]
    for trial in result.trials:
        job = jobs.get_job(trial.job_name)
        assert job.status == "stopped"
        assert not jobs.processes.is_alive(job.pid, job.pid_started)


def test_another_process_reads_the_tuning_job(tmp_path, fake_submit, boxtune_home):
    spec = spec_for(tmp_path, "shared", hyperparameters={"epochs": "2"}, max_jobs=2)
    result = run_tuning(spec, submit=fake_submit)
    script = (
        "import json; from boxtune.tuning import load_tuning; "
        "print(json.dumps(load_tuning('shared').to_json()))"
    )
    env = {**os.environ, "BOXTUNE_HOME": str(boxtune_home)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    seen = json.loads(done.stdout)
    assert seen == json.loads(json.dumps(result.to_json()))
    assert seen["storage_url"] == f"sqlite:///{boxtune_home / 'tuning.db'}"
    assert [t["state"] for t in seen["trials"]] == ["Completed", "Completed"]


def test_an_interruption_while_a_job_is_submitted_leaves_no_trial_running(tmp_path, fake_submit):
    def submit(spec, job_name, hyperparameters):
        if job_name.startswith("half-002-"):
            raise KeyboardInterrupt  # Ctrl-C before the second job was registered
        return fake_submit(spec, job_name, {**hyperparameters, "epochs": "200"})

    with pytest.raises(KeyboardInterrupt):
        run_tuning(spec_for(tmp_path, "half", max_jobs=3), submit=submit)
    result = load_tuning("half")
    assert result.status == "Stopped"
    assert [t.state for t in result.trials] == ["Stopped", "Stopped"]
    assert "before its job started" in result.trials[1].failure_reason
    assert jobs.get_job(result.trials[0].job_name).status == "stopped"
    assert [j.name for j in jobs.list_jobs()] == [result.trials[0].job_name]


def test_a_tuning_job_whose_driver_died_shows_failed_and_stops(tmp_path, fake_submit):
    from boxtune.tuning import stop_tuning
    from boxtune.tuning import study as st
    from boxtune.tuning.api import prepare

    checked, study = prepare(spec_for(tmp_path, "orphan", hyperparameters={"epochs": "200"}))
    trial = study.ask()
    job = fake_submit(checked.spec, "orphan-001-00000000", {"epochs": "200"})
    trial.set_user_attr(st.JOB_NAME, job.name)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **TEXT)
    study.set_user_attr(st.DRIVER, {"pid": int(gone.stdout), "host": st.this_host()})

    shown = load_tuning("orphan")
    assert shown.status == "Failed"
    assert "the tuning driver (pid " in shown.failure_reason
    assert "ended without recording a result" in shown.failure_reason
    stop_tuning("orphan")
    result = load_tuning("orphan")
    assert result.status == "Stopped"
    assert [t.state for t in result.trials] == ["Stopped"]
    assert jobs.get_job(job.name).status == "stopped"

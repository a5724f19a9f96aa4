"""Start, read and stop tuning jobs: ``run_tuning``, ``load_tuning``, ``stop_tuning``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from boxtune import jobs
from boxtune.errors import BoxtuneError
from boxtune.jobs import processes
from boxtune.paths import boxtune_home
from boxtune.tuning import study as st
from boxtune.tuning.results import TuningResult, _driver_gone, tuning_result
from boxtune.tuning.runner import SubmitTrial, Tuner
from boxtune.tuning.spec import CheckedSpec, TuningSpec, check_spec, describe_ranges

DRIVER_MODULE = "boxtune.tuning.driver"


def tuning_dir(name: str) -> Path:
    """Where a tuning job's own files live (the detached driver's spec and log)."""
    return boxtune_home() / "tuning" / name


def prepare(spec: TuningSpec) -> tuple[CheckedSpec, object]:
    """Check ``spec`` and create its study, with the baseline and enqueued trials queued."""
    checked = check_spec(spec)
    spec.storage_url = spec.storage_url or st.default_storage_url()
    storage = st.open_storage(spec.storage_url)
    study = st.create_study(checked, storage)
    study.set_user_attr(st.SPEC, spec.to_json())
    study.set_user_attr(st.STATUS, st.IN_PROGRESS)
    study.set_user_attr(st.CREATED_AT, time.time())
    if checked.baseline is not None:
        study.enqueue_trial(checked.baseline, user_attrs={st.BASELINE: True})
    for params in checked.enqueued:
        study.enqueue_trial(params)
    return checked, study


def describe(checked: CheckedSpec) -> str:
    spec = checked.spec
    pruning = (
        "Hyperband pruning"
        if spec.strategy == "Hyperband"
        else "early stopping (median rule)"
        if spec.early_stopping
        else "no early stopping"
    )
    return (
        f"tuning job {spec.name}: {spec.strategy} search, {checked.total_jobs} trials "
        f"({spec.max_parallel_jobs} at a time), {spec.objective.direction} "
        f"{spec.objective.name} (from {checked.source.label}), {pruning}; "
        f"{describe_ranges(spec.ranges)}"
    )


def run_tuning(
    spec: TuningSpec,
    *,
    wait: bool = True,
    log: Callable[[str], None] | None = None,
    submit: SubmitTrial | None = None,
) -> TuningResult:
    """Run the tuning job ``spec`` describes: its trials are background training jobs.

    Everything is checked before the first trial starts. With ``wait`` the trials are driven
    from this process until the end (Ctrl-C stops the running trials, then re-raises);
    without, a detached driver process (``python -m boxtune.tuning.driver``) does it and this
    returns at once. ``submit`` replaces how a trial's job starts (tests, other back-ends).
    """
    say = log or (lambda message: None)
    if submit is not None and not wait:
        raise BoxtuneError(
            "a custom submit function needs wait=True", hint="the detached driver uses jobs"
        )
    checked, study = prepare(spec)
    for note in checked.notes:
        say(f"note: {note}")
    say(describe(checked))
    if wait:
        Tuner(checked, study, log=say, submit=submit).run()
    else:
        _start_driver(spec, study)
        say(f"running in the background; follow it with `boxtune tune show {spec.name}`")
    return tuning_result(study, spec.storage_url or st.default_storage_url())


def _start_driver(spec: TuningSpec, study) -> None:
    folder = tuning_dir(spec.name)
    spec_path, log_path = folder / "spec.json", folder / "driver.log"
    try:
        spec.write(spec_path)
        from boxtune.jobs.training import job_environment

        driver = processes.spawn_detached(
            processes.python_command(DRIVER_MODULE, str(spec_path)),
            log_path,
            cwd=folder,
            env=job_environment(),
        )
    except OSError as exc:
        study.set_user_attr(st.STATUS, st.FAILED)
        study.set_user_attr(st.FAILURE_REASON, f"the tuning driver did not start: {exc}")
        raise
    study.set_user_attr(
        st.DRIVER,
        {
            "pid": driver.pid,
            "identity": processes.process_identity(driver.pid),
            "host": st.this_host(),
            "log": str(log_path),
        },
    )


def load_tuning(name: str, storage_url: str | None = None) -> TuningResult:
    """The tuning job ``name`` as stored (from any process that reaches the storage)."""
    url = storage_url or st.default_storage_url()
    return tuning_result(st.load_study(name, st.open_storage(url)), url)


def list_tunings(storage_url: str | None = None) -> list[TuningResult]:
    """Every tuning job in the storage, oldest first."""
    optuna = st.import_optuna()
    url = storage_url or st.default_storage_url()
    storage = st.open_storage(url)
    summaries = optuna.study.get_all_study_summaries(storage, include_best_trial=False)
    return [load_tuning(s.study_name, url) for s in summaries]


def stop_tuning(name: str, storage_url: str | None = None, *, timeout_s: float = 60.0) -> None:
    """Stop the running trials of tuning job ``name`` and start no new ones.

    The driver (wherever it runs) sees the request and records the trials as Stopped; this
    waits up to ``timeout_s`` for it. A tuning job whose driver is gone is closed here.
    """
    optuna = st.import_optuna()
    url = storage_url or st.default_storage_url()
    study = st.load_study(name, st.open_storage(url))
    if study.user_attrs.get(st.STATUS, st.IN_PROGRESS) != st.IN_PROGRESS:
        return
    study.set_user_attr(st.STOP_REQUESTED, True)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        job_name = trial.user_attrs.get(st.JOB_NAME)
        if job_name:
            # A job not in this machine's registry: its driver stops it.
            with contextlib.suppress(BoxtuneError):
                jobs.stop_job(job_name)
    driver = study.user_attrs.get(st.DRIVER) or {}
    if not driver.get("pid") or _driver_gone(driver):
        _close_orphan(study, optuna)
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = study.user_attrs.get(st.STATUS)
        if status != st.IN_PROGRESS:
            return
        if _driver_gone(study.user_attrs.get(st.DRIVER) or {}):
            _close_orphan(study, optuna)
            return
        time.sleep(0.2)


def _close_orphan(study, optuna) -> None:
    """No driver will record the end: mark the running trials and the study stopped."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage = study._storage
        storage.set_trial_user_attr(trial._trial_id, st.TRIAL_STATE, "Stopped")
        storage.set_trial_user_attr(trial._trial_id, st.TRIAL_REASON, "stopped by stop_tuning")
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    study.set_user_attr(st.STATUS, st.STOPPED)
    study.set_user_attr(st.ENDED_AT, time.time())

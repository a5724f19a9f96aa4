"""Running a tuning job: trials as background training jobs, driven by Optuna's ask and tell.

:class:`Tuner` keeps up to ``max_parallel_jobs`` trial jobs running until ``max_jobs`` have
run. Each poll it reads every running job's new objective values (one per epoch), reports
them to Optuna and, with pruning on, stops a job whose trial Optuna prunes, saying so in that
job's own log. A finished job becomes a finished trial: completed with its last objective
value, failed with the job's reason, or stopped.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from boxtune import jobs
from boxtune.errors import BoxtuneError
from boxtune.jobs.store import COMPLETED, STOPPED, JobRecord, Registry
from boxtune.tuning import ranges as rng
from boxtune.tuning import study as st
from boxtune.tuning.objective import last_value
from boxtune.tuning.spec import CheckedSpec, TuningSpec, trial_job_name

POLL_S = 0.5
TUNER_PREFIX = "[Tuner]"

# Starts one trial's training job: (spec, job name, hyperparameters) -> the job's record.
SubmitTrial = Callable[[TuningSpec, str, dict[str, str]], JobRecord]


@contextmanager
def trial_environment(parallel: int) -> Iterator[None]:
    """The environment the trial jobs start with: enough job slots for ``parallel`` trials
    (``BOXTUNE_MAX_RUNNING_JOBS``), and the CPU's threads shared among them unless the user
    chose (``OMP_NUM_THREADS``): two trainings each using every core slow each other down."""
    keys = ("BOXTUNE_MAX_RUNNING_JOBS", "OMP_NUM_THREADS")
    saved = {key: os.environ.get(key) for key in keys}
    try:
        current = int(saved["BOXTUNE_MAX_RUNNING_JOBS"] or "1")
    except ValueError:
        current = 1
    os.environ["BOXTUNE_MAX_RUNNING_JOBS"] = str(max(current, parallel))
    if parallel > 1 and saved["OMP_NUM_THREADS"] is None:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def submit_trial_job(spec: TuningSpec, job_name: str, hyperparameters: dict[str, str]):
    """A real training job in the registry (``source="tuning"``)."""
    with trial_environment(spec.max_parallel_jobs):
        return jobs.submit_training_job(
            training=spec.training,
            validation=spec.validation,
            model_id=spec.model_id,
            base_model=spec.base_model,
            hyperparameters=hyperparameters,
            output_path=spec.output_path,
            name=job_name,
            source="tuning",
            metric_definitions=trial_metric_definitions(spec),
        )


def trial_metric_definitions(spec: TuningSpec) -> list[dict[str, str]]:
    """What a trial's job keeps for analytics: the spec's metric definitions, and the
    objective's regex under the objective's name."""
    definitions = list(spec.metric_definitions)
    objective = spec.objective
    if objective.regex and all(d["Name"] != objective.name for d in definitions):
        definitions.append({"Name": objective.name, "Regex": objective.regex})
    return definitions


def append_to_log(path: str | Path, line: str) -> None:
    """One line at the end of a job's log, on a line of its own (a progress bar may have left
    the last line open)."""
    path = Path(path)
    open_line = False
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, 2) > 0:
                handle.seek(-1, 2)
                open_line = handle.read(1) != b"\n"
    except FileNotFoundError:
        pass
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(("\n" if open_line else "") + line + "\n")


def _read_log(job: JobRecord) -> str:
    try:
        text = Path(job.log_path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    if job.is_active:  # a line being written right now is read on the next poll
        text = text[: text.rfind("\n") + 1]
    return text


@dataclass
class _Running:
    trial: object  # optuna.Trial
    job_name: str
    baseline: bool
    reported: set[int] = field(default_factory=set)
    best: float | None = None


class Tuner:
    """Drives one tuning job to its end in this process (``run``)."""

    def __init__(
        self,
        checked: CheckedSpec,
        study,
        *,
        log: Callable[[str], None] | None = None,
        submit: SubmitTrial | None = None,
        poll_s: float = POLL_S,
        driver_log: str | None = None,
    ):
        self.optuna = st.import_optuna()
        self.checked = checked
        self.spec = checked.spec
        self.study = study
        self.log = log or (lambda message: None)
        self.submit = submit or submit_trial_job
        self.poll_s = poll_s
        self.driver_log = driver_log
        self.distributions = rng.distributions(self.spec.ranges)
        self.pruning = st.pruning(checked)
        self.running: dict[int, _Running] = {}
        states = self.optuna.trial.TrialState
        self.started = sum(t.state != states.WAITING for t in study.get_trials(deepcopy=False))

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        self._record_driver()
        try:
            while True:
                if self._stop_requested():
                    self._stop_all("the tuning job was stopped (stop_tuning)")
                    self._finish_study(st.STOPPED)
                    return
                self._start_trials()
                self._poll_trials()
                if not self.running and self.started >= self.checked.total_jobs:
                    break
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            self.log("interrupted: stopping the running trials")
            self._stop_all("the tuning job was interrupted")
            self._finish_study(st.STOPPED)
            raise
        except BaseException as exc:
            self._stop_all(f"the tuning job failed: {exc}")
            self._finish_study(st.FAILED, f"the tuning driver failed: {type(exc).__name__}: {exc}")
            raise
        self._finish_study(*self._outcome())

    def _record_driver(self) -> None:
        from boxtune.jobs import processes

        pid = os.getpid()
        self.study.set_user_attr(
            st.DRIVER,
            {
                "pid": pid,
                "identity": processes.process_identity(pid),
                "host": st.this_host(),
                "log": self.driver_log,
            },
        )
        self.study.set_user_attr(st.STATUS, st.IN_PROGRESS)

    def _stop_requested(self) -> bool:
        return bool(self.study.user_attrs.get(st.STOP_REQUESTED))

    def _outcome(self) -> tuple[str, str | None]:
        trials = self.study.get_trials(deepcopy=False)
        states = self.optuna.trial.TrialState
        if trials and all(t.state == states.FAIL for t in trials):
            first = trials[0].user_attrs.get(st.TRIAL_REASON) or "no reason recorded"
            return st.FAILED, (
                f"all {len(trials)} trials failed; trial {trials[0].number}: "
                f"{first.splitlines()[0]}"
            )
        return st.COMPLETED, None

    def _finish_study(self, status: str, reason: str | None = None) -> None:
        self.study.set_user_attr(st.STATUS, status)
        self.study.set_user_attr(st.ENDED_AT, time.time())
        if reason:
            self.study.set_user_attr(st.FAILURE_REASON, reason)
        result = f"tuning job {self.spec.name} {status.lower()}"
        self.log(result + (f": {reason}" if reason else ""))

    # -- starting trials -------------------------------------------------------------------------
    def _start_trials(self) -> None:
        while len(self.running) < self.spec.max_parallel_jobs and (
            self.started < self.checked.total_jobs
        ):
            trial = self.study.ask(self.distributions)
            self.started += 1
            tuned = rng.values_from_params(self.spec.ranges, trial.params)
            hyperparameters = {**self.spec.hyperparameters, **tuned}
            trial.set_user_attr(st.HYPERPARAMETERS, hyperparameters)
            baseline = bool(trial.user_attrs.get(st.BASELINE))
            # Known as running before its job is submitted: an interruption in between still
            # stops the job (or finds that there is none) and closes the trial.
            run = _Running(trial, "", baseline)
            self.running[trial.number] = run
            try:
                job = self._submit(run, hyperparameters)
            except BoxtuneError as exc:
                del self.running[trial.number]
                self._tell_failed(trial, f"its training job did not start: {exc}")
                self.log(f"trial {trial.number} failed to start: {exc}")
                continue
            shown = ", ".join(f"{k}={v}" for k, v in tuned.items())
            label = " (baseline: the defaults)" if baseline else ""
            self.log(f"trial {trial.number}{label} started: {shown} (job {job.name})")

    def _submit(self, run: _Running, hyperparameters: dict[str, str]) -> JobRecord:
        for attempt in range(3):
            run.job_name = trial_job_name(self.spec.name, run.trial.number)
            run.trial.set_user_attr(st.JOB_NAME, run.job_name)
            try:
                return self.submit(self.spec, run.job_name, hyperparameters)
            except BoxtuneError as exc:  # a name taken by chance: draw another suffix
                if "already exists" not in str(exc) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # -- following trials ------------------------------------------------------------------------
    def _poll_trials(self) -> None:
        for number in list(self.running):
            run = self.running[number]
            job = jobs.get_job(run.job_name)
            text = _read_log(job) if self.checked.source.regex else ""
            values = self.checked.source.values(text, job.metrics)
            pruned = False
            for epoch, value in values:
                if epoch in run.reported:
                    continue
                self._report(run, epoch, value)
                if self.pruning and job.is_active and run.trial.should_prune():
                    pruned = self._prune(run, epoch, value)
                    break
            if not pruned and not job.is_active:
                self._finish_trial(run, job)

    def _report(self, run: _Running, epoch: int, value: float) -> None:
        run.trial.report(value, epoch)
        run.reported.add(epoch)
        if run.best is None or self.spec.objective.better(value, run.best):
            run.best = value

    def _prune(self, run: _Running, epoch: int, value: float) -> bool:
        """Stop the trial's job; False when it finished on its own meanwhile."""
        number = run.trial.number
        why = self._prune_reason(run, epoch, value)
        job = jobs.get_job(run.job_name, with_metrics=False)
        append_to_log(
            job.log_path,
            f"{TUNER_PREFIX} trial {number} pruned after epoch {epoch}: {why}; stopping this "
            f"training job (early stopping of tuning job {self.spec.name})",
        )
        stopped = jobs.stop_job(run.job_name)
        if stopped.status != STOPPED:
            return False  # it completed (or failed) just before the stop: a trial like any
        Registry().update_job(
            run.job_name,
            failure_reason=f"early-stopped by tuning job {self.spec.name}: trial {number} "
            f"pruned after epoch {epoch} ({why})",
        )
        run.trial.set_user_attr(st.PRUNED_AT, epoch)
        run.trial.set_user_attr(st.TRIAL_REASON, f"pruned after epoch {epoch}: {why}")
        self._record_metrics(run, stopped)
        self.study.tell(run.trial, state=self.optuna.trial.TrialState.PRUNED)
        del self.running[number]
        self.log(f"trial {number} pruned after epoch {epoch}: {why} (job {run.job_name})")
        return True

    def _prune_reason(self, run: _Running, epoch: int, value: float) -> str:
        objective = self.spec.objective
        if self.spec.strategy == "Hyperband":
            return (
                f"{objective.name} = {value:.4f} is not among the best of its Hyperband "
                "bracket at this epoch"
            )
        states = (self.optuna.trial.TrialState.COMPLETE,)
        others = [
            t.intermediate_values[epoch]
            for t in self.study.get_trials(deepcopy=False, states=states)
            if epoch in t.intermediate_values
        ]
        # The median rule compares the trial's best value so far with the others' at this epoch.
        if run.best is not None and run.best != value:
            shown = f"its best {objective.name} so far, {run.best:.4f} (now {value:.4f}),"
        else:
            shown = f"{objective.name} = {value:.4f}"
        if not others:
            return f"{shown} is worse than the earlier trials"
        return (
            f"{shown} is worse than the median {statistics.median(others):.4f} of "
            f"{len(others)} completed trial{'s' if len(others) > 1 else ''} at this epoch"
        )

    def _record_metrics(self, run: _Running, job: JobRecord) -> None:
        if not self.checked.metric_sources:
            return
        text = _read_log(job)
        metrics = {}
        for name, source in self.checked.metric_sources.items():
            value = last_value(source.values(text, job.metrics))
            if value is not None:
                metrics[name] = value
        run.trial.set_user_attr(st.METRICS, metrics)

    def _finish_trial(self, run: _Running, job: JobRecord) -> None:
        number = run.trial.number
        del self.running[number]
        self._record_metrics(run, job)
        if job.status == COMPLETED:
            text = _read_log(job) if self.checked.source.regex else ""
            values = self.checked.source.values(text, job.metrics)
            for epoch, value in values:
                if epoch not in run.reported:
                    self._report(run, epoch, value)
            final = last_value(values)
            if final is None:
                reason = self.checked.source.missing()
                self._tell_failed(run.trial, reason)
                self.log(f"trial {number} failed: {reason} (job {job.name})")
                return
            self.study.tell(run.trial, final)
            self.log(
                f"trial {number} completed: {self.spec.objective.name} = {final:.4f} "
                f"(job {job.name})"
            )
            return
        reason = job.failure_reason or f"the training job ended {job.status}"
        if job.status == STOPPED:
            self._tell_failed(run.trial, reason, stopped=True)
            self.log(f"trial {number} stopped: {reason.splitlines()[0]} (job {job.name})")
            return
        self._tell_failed(run.trial, reason)
        self.log(f"trial {number} failed: {reason.splitlines()[0]} (job {job.name})")

    def _tell_failed(self, trial, reason: str, *, stopped: bool = False) -> None:
        trial.set_user_attr(st.TRIAL_REASON, reason)
        if stopped:
            trial.set_user_attr(st.TRIAL_STATE, "Stopped")
        self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)

    def _stop_all(self, reason: str) -> None:
        for number in list(self.running):
            run = self.running.pop(number)
            if not run.job_name or Registry().get_job(run.job_name) is None:
                self._tell_failed(run.trial, f"{reason} before its job started", stopped=True)
                continue
            try:
                job = jobs.stop_job(run.job_name)
            except BoxtuneError as exc:
                self._tell_failed(run.trial, f"{reason}; its job could not be stopped: {exc}")
                continue
            if job.status == COMPLETED:  # it finished while we were stopping: keep the result
                self.running[number] = run
                self._finish_trial(run, jobs.get_job(run.job_name))
                continue
            self._tell_failed(run.trial, reason, stopped=True)
            self.log(f"trial {number} stopped (job {run.job_name})")
        # A trial asked for but interrupted before it was known as running.
        states = self.optuna.trial.TrialState
        storage = self.study._storage
        for trial in self.study.get_trials(deepcopy=False, states=(states.RUNNING,)):
            storage.set_trial_user_attr(trial._trial_id, st.TRIAL_STATE, "Stopped")
            storage.set_trial_user_attr(trial._trial_id, st.TRIAL_REASON, reason)
            self.study.tell(trial.number, state=states.FAIL, skip_if_finished=True)

"""What a tuning job looks like from outside: its trials and its best one, read from the study."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from boxtune.jobs import processes
from boxtune.tuning import study as st
from boxtune.tuning.objective import Objective

TRIAL_STATES = ("Completed", "Pruned", "Failed", "Running", "Stopped")


@dataclass
class TrialResult:
    number: int  # Optuna's trial number, from 0 (the job name counts from 001)
    job_name: str | None
    hyperparameters: dict[str, str]  # what the trial's job got: static values + tuned ones
    state: str  # Completed | Pruned | Failed | Running | Stopped
    objective_value: float | None  # a pruned or stopped trial: its last reported value
    intermediate: dict[int, float]  # epoch -> objective value
    started_at: float | None = None
    ended_at: float | None = None
    baseline: bool = False  # the model's default values of the tuned names
    failure_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # last value per metric definition
    pruned_after_epoch: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["intermediate"] = {str(k): v for k, v in self.intermediate.items()}
        for key in ("started_at", "ended_at"):
            data[key] = _iso(data[key])
        return data


@dataclass
class TuningResult:
    name: str
    status: str  # InProgress | Completed | Failed | Stopped
    objective: Objective
    trials: list[TrialResult]
    storage_url: str
    strategy: str = "Bayesian"
    max_jobs: int = 0
    max_parallel_jobs: int = 0
    tuned: list[str] = field(default_factory=list)  # the names of the tuned hyperparameters
    failure_reason: str | None = None
    created_at: float | None = None
    ended_at: float | None = None
    driver_log: str | None = None

    @property
    def best(self) -> TrialResult | None:
        """The best completed trial by the objective's direction (the first one on a tie)."""
        best: TrialResult | None = None
        for trial in self.trials:
            if trial.state != "Completed" or trial.objective_value is None:
                continue
            if best is None or self.objective.better(trial.objective_value, best.objective_value):
                best = trial
        return best

    @property
    def baseline(self) -> TrialResult | None:
        return next((t for t in self.trials if t.baseline), None)

    def counts(self) -> dict[str, int]:
        return {state: sum(t.state == state for t in self.trials) for state in TRIAL_STATES}

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "name": self.name,
            "status": self.status,
            "objective": self.objective.to_json(),
            "strategy": self.strategy,
            "max_jobs": self.max_jobs,
            "max_parallel_jobs": self.max_parallel_jobs,
            "tuned": self.tuned,
            "storage_url": self.storage_url,
            "failure_reason": self.failure_reason,
            "created_at": _iso(self.created_at),
            "ended_at": _iso(self.ended_at),
            "driver_log": self.driver_log,
            "counts": self.counts(),
            "best": best.to_json() if best else None,
            "trials": [t.to_json() for t in self.trials],
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _timestamp(when: datetime | None) -> float | None:
    return when.timestamp() if when else None


def trial_result(trial) -> TrialResult | None:
    """A FrozenTrial as a TrialResult; None for a trial still waiting in the queue."""
    optuna = st.import_optuna()
    states = optuna.trial.TrialState
    if trial.state == states.WAITING:
        return None
    attrs = trial.user_attrs
    intermediate = {int(k): float(v) for k, v in sorted(trial.intermediate_values.items())}
    state = {
        states.COMPLETE: "Completed",
        states.PRUNED: "Pruned",
        states.RUNNING: "Running",
    }.get(trial.state, "Failed")
    if state == "Failed" and attrs.get(st.TRIAL_STATE) == "Stopped":
        state = "Stopped"
    value: float | None = None
    if trial.state == states.COMPLETE and trial.value is not None:
        value = float(trial.value)
    elif state in ("Pruned", "Stopped") and intermediate:
        value = intermediate[max(intermediate)]
    if value is not None and not math.isfinite(value):
        value = None
    return TrialResult(
        number=trial.number,
        job_name=attrs.get(st.JOB_NAME),
        hyperparameters=dict(attrs.get(st.HYPERPARAMETERS) or {}),
        state=state,
        objective_value=value,
        intermediate=intermediate,
        started_at=_timestamp(trial.datetime_start),
        ended_at=_timestamp(trial.datetime_complete),
        baseline=bool(attrs.get(st.BASELINE)),
        failure_reason=attrs.get(st.TRIAL_REASON),
        metrics=dict(attrs.get(st.METRICS) or {}),
        pruned_after_epoch=attrs.get(st.PRUNED_AT),
    )


def tuning_result(study, storage_url: str) -> TuningResult:
    """The study as a TuningResult; a tuning job whose driver died shows as Failed."""
    from boxtune.tuning.spec import TuningSpec

    attrs = study.user_attrs
    spec = TuningSpec.from_json(attrs[st.SPEC]) if st.SPEC in attrs else None
    trials = [r for t in study.get_trials(deepcopy=False) if (r := trial_result(t)) is not None]
    status = attrs.get(st.STATUS, st.IN_PROGRESS)
    reason = attrs.get(st.FAILURE_REASON)
    driver = attrs.get(st.DRIVER) or {}
    if status == st.IN_PROGRESS and _driver_gone(driver):
        status = st.FAILED
        reason = (
            f"the tuning driver (pid {driver.get('pid')}) ended without recording a result "
            "(it was killed, or the machine restarted)"
            + (f"; its log: {driver['log']}" if driver.get("log") else "")
        )
    objective = spec.objective if spec else Objective("objective", study.direction.name.lower())
    return TuningResult(
        name=study.study_name,
        status=status,
        objective=objective,
        trials=trials,
        storage_url=storage_url,
        strategy=spec.strategy if spec else "Bayesian",
        max_jobs=spec.max_jobs if spec else len(trials),
        max_parallel_jobs=spec.max_parallel_jobs if spec else 1,
        tuned=list(spec.ranges) if spec else [],
        failure_reason=reason,
        created_at=attrs.get(st.CREATED_AT),
        ended_at=attrs.get(st.ENDED_AT),
        driver_log=driver.get("log"),
    )


def _driver_gone(driver: dict) -> bool:
    """Whether the driver recorded for the study is known to be dead (on this machine only:
    a driver on another machine sharing the storage cannot be checked from here)."""
    pid = driver.get("pid")
    if not pid or driver.get("host") != st.this_host():
        return False
    return not processes.is_alive(int(pid), driver.get("identity"))

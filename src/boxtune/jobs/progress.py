"""How far a training job is: epochs done of the total, and an ETA at the pace so far."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from boxtune.jobs.store import COMPLETED, JobRecord


@dataclass(frozen=True)
class TrainingProgress:
    epochs_done: int
    epochs_total: int | None
    fraction: float | None
    seconds_per_epoch: float | None
    eta_s: float | None

    def to_json(self) -> dict:
        return asdict(self)


def _total_epochs(job: JobRecord) -> int | None:
    try:
        return max(1, int(float(job.hyperparameters.get("epochs", ""))))
    except ValueError:
        return None


def training_progress(job: JobRecord, now: float | None = None) -> TrainingProgress:
    """From the job's per-epoch metrics (``job.metrics``) and its ``epochs`` hyperparameter.

    The pace is wall time since the job started over epochs done, so validation and start-up
    count; early stopping can end a job before the ETA says.
    """
    done = len(job.metrics)
    total = _total_epochs(job)
    fraction = None if total is None else min(1.0, done / total)
    pace = eta = None
    if done and job.started_at is not None:
        elapsed = (job.ended_at or now or time.time()) - job.started_at
        pace = elapsed / done
        if total is not None and job.is_active:
            eta = max(0.0, (total - done) * pace)
    if not job.is_active and job.status == COMPLETED:
        fraction, eta = 1.0, 0.0
    return TrainingProgress(
        epochs_done=done,
        epochs_total=total,
        fraction=fraction,
        seconds_per_epoch=None if pace is None else round(pace, 2),
        eta_s=None if eta is None else round(eta, 1),
    )

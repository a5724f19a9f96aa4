"""Evaluating a finished training job as a job of its own: ``boxtune evaluate`` over the job's
validation data (its training data when it had none), the report in the job's folder.

The evaluation job's name derives from the training job's, so whoever asks (a page reloaded,
another process) finds the same one instead of starting a second.
"""

from __future__ import annotations

from pathlib import Path

from boxtune.errors import BoxtuneError
from boxtune.jobs import processes
from boxtune.jobs.store import COMPLETED, MAX_NAME_LENGTH, JobRecord, Registry
from boxtune.jobs.supervisor import find_artifact_dir
from boxtune.jobs.training import TRAIN_OUTPUT_DIR, get_job, submit_job

EVALUATION_DIR = "evaluation"
SUFFIX = "-eval"


def job_artifact(job: JobRecord) -> Path:
    """The model directory a completed training job wrote (what deploy and evaluate load)."""
    artifact = find_artifact_dir(Path(job.work_dir) / TRAIN_OUTPUT_DIR)
    if job.status != COMPLETED or artifact is None:
        raise BoxtuneError(
            f"training job {job.name} has no model yet (it is {job.status})",
            hint="wait until it is completed"
            if job.is_active
            else f"`boxtune jobs show {job.name}`",
        )
    return artifact


def evaluation_job_name(training_job: str) -> str:
    return training_job[: MAX_NAME_LENGTH - len(SUFFIX)] + SUFFIX


def report_dir(job: JobRecord) -> Path:
    """Where the evaluation of ``job`` writes ``report.html`` and ``metrics.json``."""
    return Path(job.work_dir) / EVALUATION_DIR


def find_evaluation_job(training_job: str, registry: Registry | None = None) -> JobRecord | None:
    registry = registry or Registry()
    if registry.get_job(evaluation_job_name(training_job)) is None:
        return None
    return get_job(evaluation_job_name(training_job), registry, with_metrics=False)


def submit_evaluation_job(
    training_job: str,
    *,
    data: str | None = None,
    score_threshold: float = 0.5,
    source: str = "sdk",
    registry: Registry | None = None,
) -> JobRecord:
    """Start evaluating the completed job ``training_job``, or return the evaluation job that
    already ran or runs for it."""
    registry = registry or Registry()
    existing = find_evaluation_job(training_job, registry)
    if existing is not None:
        return existing
    job = get_job(training_job, registry, with_metrics=False)
    artifact = job_artifact(job)
    data = data or job.inputs.get("validation") or job.inputs.get("training")
    if not data:
        raise BoxtuneError(
            f"training job {job.name} records no dataset to evaluate on",
            hint="pass data= (a dataset folder or s3:// prefix)",
        )
    command = processes.python_command(
        "boxtune.cli",
        "evaluate",
        "--model",
        str(artifact),
        "--data",
        data,
        "--output",
        str(report_dir(job)),
        "--score-threshold",
        str(score_threshold),
        "--no-progress",
    )
    return submit_job(
        command,
        name=evaluation_job_name(job.name),
        model_id=job.model_id,
        base_model=str(artifact),
        inputs={"evaluation": data, "model": str(artifact)},
        source=source,
        registry=registry,
    )

"""Training jobs: submit one as a background process, follow it, stop it, read its results.

A job is ``python -m boxtune.jobs.supervisor NAME`` started detached; the supervisor waits for
a free slot (``BOXTUNE_MAX_RUNNING_JOBS``, default 1: two trainings on two cores only slow
each other down), runs the job's command with its output in the job's log, publishes the
artifact to ``<output_path>/<name>/output/`` and records the outcome. Whoever reads the
registry checks that the supervisor still lives, so a killed job is marked failed, never left
running forever.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from boxtune import fileio, storage
from boxtune.errors import BoxtuneError
from boxtune.jobs import logs, processes
from boxtune.jobs.store import (
    ACTIVE_JOB_STATUSES,
    FAILED,
    QUEUED,
    RUNNING,
    STOPPED,
    JobRecord,
    Registry,
    validate_name,
)
from boxtune.paths import boxtune_home

TRAIN_OUTPUT_DIR = "train-output"
# How long resume_job waits for a stopping job's supervisor (the trainer's grace, and then some).
RESUME_WAIT_S = 40.0
LOG_FILE = "job.log"
METRIC_DEFINITIONS_FILE = "metric_definitions.json"
# A job registered but never picked up by a supervisor (the submitter died in between).
NEVER_STARTED_AFTER_S = 60.0


def jobs_root() -> Path:
    return boxtune_home() / "jobs"


def job_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a job's processes: the caller's, pinned to the same BOXTUNE_HOME."""
    env = dict(os.environ)
    env["BOXTUNE_HOME"] = str(boxtune_home())
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the log file (and `logs --follow`) at once
    env.setdefault("TQDM_MININTERVAL", "5")  # progress bars in a log file: a line every 5 s
    env.update(extra or {})
    return env


def model_data_uri(output_path: str, job_name: str) -> str:
    """Where a finished job's ``model.tar.gz`` lives (the managed platform's layout)."""
    return storage.join(output_path, job_name, "output", "model.tar.gz")


def submit_job(
    command: list[str],
    *,
    name: str | None = None,
    base_name: str = "boxtune-job",
    model_id: str | None = None,
    base_model: str | None = None,
    hyperparameters: Mapping[str, str] | None = None,
    inputs: Mapping[str, str] | None = None,
    output_path: str | None = None,
    source: str = "sdk",
    env: Mapping[str, str] | None = None,
    metric_definitions: Sequence[Mapping[str, str]] | None = None,
    registry: Registry | None = None,
) -> JobRecord:
    """Register a job running ``command`` and start its supervisor; returns the queued record.

    With ``output_path``, the supervisor publishes the model directory found under the job's
    ``train-output/`` to ``<output_path>/<name>/output/`` once the command succeeds.
    ``metric_definitions`` (the platform's ``[{"Name": ..., "Regex": ...}]`` over the log) are
    kept with the job for ``TrainingJobAnalytics`` and tuning.
    """
    registry = registry or Registry()
    name = validate_name(name) if name else registry.claim_name(base_name)
    work_dir = jobs_root() / name
    if work_dir.exists() and registry.get_job(name) is None:
        raise BoxtuneError(
            f"{work_dir} exists but no job named {name!r} is registered",
            hint="pick another job name, or remove the directory",
        )
    job = JobRecord(
        name=name,
        status=QUEUED,
        model_id=model_id,
        base_model=base_model,
        hyperparameters={k: str(v) for k, v in (hyperparameters or {}).items()},
        inputs=dict(inputs or {}),
        output_path=output_path,
        model_data=model_data_uri(output_path, name) if output_path else None,
        work_dir=str(work_dir),
        log_path=str(work_dir / LOG_FILE),
        command=[str(part) for part in command],
        created_at=time.time(),
        source=source,
    )
    registry.insert_job(job)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "command.json").write_text(json.dumps(job.command, indent=2) + "\n")
    if metric_definitions:
        definitions = [{"Name": d["Name"], "Regex": d["Regex"]} for d in metric_definitions]
        fileio.atomic_write_bytes(
            work_dir / METRIC_DEFINITIONS_FILE, json.dumps(definitions, indent=1).encode()
        )
    _start_supervisor(job, registry, env)
    return registry.get_job(name) or job


def read_metric_definitions(job: JobRecord) -> list[dict[str, str]]:
    """The metric definitions the job was submitted with (none: an empty list)."""
    try:
        return json.loads((Path(job.work_dir) / METRIC_DEFINITIONS_FILE).read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def _start_supervisor(
    job: JobRecord, registry: Registry, env: Mapping[str, str] | None = None
) -> None:
    supervisor = processes.spawn_detached(
        processes.python_command("boxtune.jobs.supervisor", job.name),
        Path(job.log_path),
        cwd=Path(job.work_dir),
        env=job_environment(env),
    )
    identity = processes.process_identity(supervisor.pid)
    registry.update_job(job.name, pid=supervisor.pid, pid_started=identity)


def training_command(
    *,
    work_dir: Path,
    training: str,
    validation: str | None = None,
    model_id: str | None = None,
    base_model: str | None = None,
    weights: str | None = None,
    hyperparameters: Mapping[str, str] | None = None,
) -> list[str]:
    """``boxtune train ...`` writing into the job's local ``train-output/`` directory."""
    command = processes.python_command("boxtune.cli", "train", "--training", str(training))
    if model_id:
        command += ["--model-id", model_id]
    if base_model:
        command += ["--model", str(base_model)]
    if weights:
        command += ["--weights", str(weights)]
    if validation:
        command += ["--validation", str(validation)]
    command += ["--output", str(work_dir / TRAIN_OUTPUT_DIR)]
    for key, value in (hyperparameters or {}).items():
        command += ["--hp", f"{key}={value}"]
    return command


def submit_training_job(
    *,
    training: str,
    output_path: str,
    validation: str | None = None,
    model_id: str | None = None,
    base_model: str | None = None,
    weights: str | None = None,
    hyperparameters: Mapping[str, str] | None = None,
    name: str | None = None,
    base_name: str | None = None,
    source: str = "sdk",
    metric_definitions: Sequence[Mapping[str, str]] | None = None,
    registry: Registry | None = None,
) -> JobRecord:
    """Fine-tune ``model_id`` (or continue from the artifact ``base_model``) as a job;
    ``weights``: where ``model_id``'s pretrained weights are, when not in BOXTUNE_HOME."""
    if not model_id and not base_model:
        raise BoxtuneError(
            "a training job needs a model",
            hint="pass model_id (see `boxtune models list`) or base_model (a previous artifact)",
        )
    registry = registry or Registry()
    name = validate_name(name) if name else registry.claim_name(base_name or model_id or "boxtune")
    hyperparameters = {k: str(v) for k, v in (hyperparameters or {}).items()}
    overrides = _differences_from_defaults(model_id, hyperparameters)
    inputs = {"training": str(training)}
    if validation:
        inputs["validation"] = str(validation)
    if base_model:
        inputs["model"] = str(base_model)
    if weights:
        inputs["weights"] = str(weights)
    command = training_command(
        work_dir=jobs_root() / name,
        training=str(training),
        validation=str(validation) if validation else None,
        model_id=model_id,
        base_model=str(base_model) if base_model else None,
        weights=str(weights) if weights else None,
        hyperparameters=overrides,
    )
    return submit_job(
        command,
        name=name,
        model_id=model_id,
        base_model=str(base_model) if base_model else None,
        hyperparameters=hyperparameters,
        inputs=inputs,
        output_path=output_path,
        source=source,
        metric_definitions=metric_definitions,
        registry=registry,
    )


def _differences_from_defaults(model_id: str | None, values: dict[str, str]) -> dict[str, str]:
    """The values that differ from the model's defaults: only those go on the command line.

    Code written for the managed SDK passes the whole ``retrieve_default`` dict back; passing
    it all as explicit overrides would pin, e.g., the default ``image_size`` onto an artifact
    trained at another size (incremental training), and make the trainer comment on options
    the user never chose.
    """
    try:
        from boxtune.train.hyperparameters import retrieve_default

        defaults = retrieve_default(model_id)
    except BoxtuneError:
        return dict(values)
    return {k: v for k, v in values.items() if defaults.get(k) != v}


# -- reading the registry, with liveness checks ------------------------------------------------
def _orphan_reason(job: JobRecord) -> str:
    reason = (
        f"the job's supervisor process (pid {job.pid}) ended without recording a result "
        "(it was killed, or the machine restarted)"
    )
    last = logs.failure_reason(logs.read_tail(Path(job.log_path)))
    return f"{reason}\nlast log lines:\n{last}" if last else reason


def _kill_orphaned_trainer(job: JobRecord) -> None:
    """The supervisor is gone but its child may still run: stop it, nobody will record it."""
    if not job.child_pid or not job.pid or not processes.is_alive(job.child_pid):
        return
    try:
        same_group = os.getpgid(job.child_pid) == job.pid
    except ProcessLookupError:
        return
    if same_group:
        processes.terminate(job.child_pid, None, grace_s=5.0)


def reconcile(job: JobRecord, registry: Registry) -> JobRecord:
    """Mark an active job whose processes are gone as failed (with the reason)."""
    if job.status not in ACTIVE_JOB_STATUSES:
        return job
    now = time.time()
    if job.pid is None:
        if now - job.created_at < NEVER_STARTED_AFTER_S:
            return job
        reason = "the job was registered but its supervisor never started"
    elif processes.is_alive(job.pid, job.pid_started):
        return job
    else:
        _kill_orphaned_trainer(job)
        reason = _orphan_reason(job)
    registry.update_job(
        job.name,
        when_status=ACTIVE_JOB_STATUSES,
        status=FAILED,
        ended_at=now,
        failure_reason=reason,
    )
    return registry.get_job(job.name) or job


def find_metrics_file(work_dir: str | Path) -> Path | None:
    output = Path(work_dir) / TRAIN_OUTPUT_DIR
    direct = output / "metrics.jsonl"
    if direct.exists():
        return direct
    return next(iter(sorted(output.rglob("metrics.jsonl"))), None) if output.exists() else None


def read_metrics(job: JobRecord) -> list[dict]:
    """The job's per-epoch metrics so far (the trainer's metrics.jsonl), oldest first."""
    path = find_metrics_file(job.work_dir)
    if path is None:
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line being written right now
    return records


def get_job(name: str, registry: Registry | None = None, with_metrics: bool = True) -> JobRecord:
    registry = registry or Registry()
    job = registry.get_job(name)
    if job is None:
        known = [j.name for j in registry.list_jobs(limit=5)]
        raise BoxtuneError(
            f"no training job named {name!r}",
            where=str(registry.path),
            hint="`boxtune jobs list` shows the jobs"
            + (f"; most recent: {', '.join(known)}" if known else "")
            + " (jobs are kept per BOXTUNE_HOME)",
        )
    job = reconcile(job, registry)
    if with_metrics:
        job.metrics = read_metrics(job)
    return job


def list_jobs(
    statuses: list[str] | None = None, limit: int | None = None, registry: Registry | None = None
) -> list[JobRecord]:
    registry = registry or Registry()
    for job in registry.list_jobs(ACTIVE_JOB_STATUSES):
        reconcile(job, registry)
    return registry.list_jobs(statuses, limit)


def resume_job(name: str, registry: Registry | None = None) -> JobRecord:
    """Start a stopped or failed training job again from its last checkpoint (``--resume``).

    The trainer checkpoints after every epoch and when interrupted, so a stopped job (or one
    killed mid-run) continues where it was instead of starting over.
    """
    registry = registry or Registry()
    job = get_job(name, registry, with_metrics=False)
    if job.status not in (FAILED, STOPPED):
        raise BoxtuneError(
            f"training job {name} is {job.status}; only stopped or failed jobs resume",
            hint=f"`boxtune jobs show {name}`",
        )
    # A stop marks the job stopped at once, but its supervisor lives on while the trainer saves
    # its checkpoint; starting again meanwhile would run two trainers on one checkpoint folder,
    # and the old supervisor's last word would mark the resumed job stopped.
    if not processes.wait_until_dead(job.pid or 0, job.pid_started, RESUME_WAIT_S):
        raise BoxtuneError(
            f"training job {name} is still stopping (its trainer is saving a checkpoint)",
            hint=f"resume it once `boxtune jobs show {name}` shows no running process",
        )
    from boxtune.train.checkpoints import CHECKPOINT_DIR, find_checkpoint

    checkpoint_dir = Path(job.work_dir) / TRAIN_OUTPUT_DIR / CHECKPOINT_DIR
    if find_checkpoint(checkpoint_dir, "last") is None:
        raise BoxtuneError(
            f"training job {name} has no checkpoint to resume from",
            where=str(checkpoint_dir),
            hint="it ended before its first checkpoint: start a new job (the failure reason: "
            f"`boxtune jobs show {name}`)",
        )
    command = job.command if "--resume" in job.command else [*job.command, "--resume"]
    resumed = registry.update_job(
        name,
        when_status=(FAILED, STOPPED),
        status=QUEUED,
        command=command,
        pid=None,
        pid_started=None,
        child_pid=None,
        exit_code=None,
        failure_reason=None,
        started_at=None,
        ended_at=None,
    )
    if not resumed:
        raise BoxtuneError(f"training job {name} changed state meanwhile", hint="try again")
    _start_supervisor(registry.get_job(name), registry)
    return get_job(name, registry)


def stop_job(name: str, registry: Registry | None = None, grace_s: float = 30.0) -> JobRecord:
    """Stop a queued or running job (its whole process group); a finished job is left as is."""
    registry = registry or Registry()
    job = get_job(name, registry, with_metrics=False)
    if not job.is_active:
        return job
    registry.update_job(
        name,
        when_status=ACTIVE_JOB_STATUSES,
        status=STOPPED,
        ended_at=time.time(),
        failure_reason="stopped by the user",
    )
    # The supervisor passes one SIGINT on to the trainer, which saves a checkpoint (a
    # KeyboardInterrupt) before it exits; whatever still lives after grace_s is killed.
    processes.terminate(
        job.pid, job.pid_started, grace_s=grace_s, first_signal=signal.SIGINT, leader_only=True
    )
    return get_job(name, registry)


def wait_for_job(
    name: str,
    *,
    timeout: float | None = None,
    poll_s: float = 1.0,
    registry: Registry | None = None,
    on_poll: Callable[[JobRecord], None] | None = None,
) -> JobRecord:
    """Block until the job is completed, failed or stopped; returns the final record."""
    registry = registry or Registry()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = get_job(name, registry, with_metrics=False)
        if on_poll:
            on_poll(job)
        if not job.is_active:
            job.metrics = read_metrics(job)
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise BoxtuneError(
                f"training job {name!r} is still {job.status} after {timeout:.0f} s",
                hint=f"keep waiting with `boxtune jobs logs {name} --follow`, or stop it with "
                f"`boxtune jobs stop {name}`",
            )
        time.sleep(poll_s)


def stream_logs(
    name: str, out, registry: Registry | None = None, follow: bool = True, poll_s: float = 0.5
) -> JobRecord:
    """Write the job's log to ``out``; with ``follow`` keep going until the job ends."""
    registry = registry or Registry()
    job = get_job(name, registry, with_metrics=False)
    log_path = Path(job.log_path)

    def finished() -> bool:
        return not follow or not get_job(name, registry, with_metrics=False).is_active

    logs.follow(log_path, finished, out, poll_s=poll_s)
    return get_job(name, registry)


__all__ = [
    "QUEUED",
    "RUNNING",
    "get_job",
    "list_jobs",
    "model_data_uri",
    "read_metrics",
    "reconcile",
    "resume_job",
    "stop_job",
    "stream_logs",
    "submit_job",
    "submit_training_job",
    "wait_for_job",
]

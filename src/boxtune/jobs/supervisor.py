"""``python -m boxtune.jobs.supervisor NAME``: runs one registered job and records its outcome.

Started detached by ``submit_job`` with stdout/stderr appended to the job's log. It waits for a
free slot, runs the job's command, publishes the model on success and writes the final status.
SIGTERM (``boxtune jobs stop``) reaches the whole process group; the supervisor then gives the
command a grace period before killing it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from boxtune import storage
from boxtune.errors import BoxtuneError
from boxtune.jobs import logs, processes
from boxtune.jobs.store import COMPLETED, FAILED, QUEUED, RUNNING, STOPPED, JobRecord, Registry
from boxtune.jobs.training import TRAIN_OUTPUT_DIR, list_jobs

STOP_GRACE_S = 20.0
SLOT_POLL_S = 1.0


def say(message: str) -> None:
    print(f"{logs.SUPERVISOR_PREFIX} {message}", flush=True)


def max_running_jobs() -> int:
    raw = os.environ.get("BOXTUNE_MAX_RUNNING_JOBS", "1")
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


class _StopRequested:
    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        self.requested = True


def claim_slot(registry: Registry, job: JobRecord, limit: int) -> str:
    """ "claimed" (now running), "wait" (others first), or "gone" (stopped while queued)."""
    list_jobs(registry=registry)  # marks dead jobs failed, so they do not hold slots
    with registry.transaction() as conn:
        row = conn.execute("SELECT status FROM jobs WHERE name = ?", (job.name,)).fetchone()
        if row is None or row["status"] != QUEUED:
            return "gone"
        running = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (RUNNING,)).fetchone()[
            0
        ]
        ahead = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE status = ? AND created_at < ?",
            (QUEUED, job.created_at),
        ).fetchone()[0]
        if running + ahead >= limit:
            return "wait"
        conn.execute(
            "UPDATE jobs SET status = ?, started_at = ? WHERE name = ?",
            (RUNNING, time.time(), job.name),
        )
        return "claimed"


def find_artifact_dir(train_output: Path) -> Path | None:
    """The directory holding the trainer's ``model.tar.gz`` (the shallowest one)."""
    if (train_output / "model.tar.gz").exists():
        return train_output
    found = sorted(train_output.rglob("model.tar.gz"), key=lambda p: len(p.parts))
    return found[0].parent if found else None


def publish(job: JobRecord) -> str:
    """Copy the artifact to ``<output_path>/<name>/output/``; returns the model.tar.gz URI."""
    artifact = find_artifact_dir(Path(job.work_dir) / TRAIN_OUTPUT_DIR)
    if artifact is None:
        raise BoxtuneError(
            "training finished but wrote no model.tar.gz",
            where=str(Path(job.work_dir) / TRAIN_OUTPUT_DIR),
            hint="see the job's log; this is a bug in boxtune if the log shows no error",
        )
    destination = storage.join(job.output_path, job.name, "output")
    say(f"publishing the model to {destination}")
    # Checkpoints (optimizer state) stay in the job's work dir. The manifest goes after the
    # files it describes and model.tar.gz last: whoever polls for it finds a whole directory.
    last = ("boxtune-model.json", "model.tar.gz")
    files = [
        path
        for path in sorted(artifact.iterdir())
        if path.name not in (*last, "checkpoints") and not path.name.startswith(".")
    ]
    files += [artifact / name for name in last if (artifact / name).exists()]
    for path in files:
        storage.upload(path, storage.join(destination, path.name))
    return storage.join(destination, "model.tar.gz")


def run_command(job: JobRecord, registry: Registry, stop: _StopRequested) -> int:
    say(f"running: {' '.join(job.command)}")
    with open(job.log_path, "ab") as log:
        child = subprocess.Popen(
            job.command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=job.work_dir,
        )
    registry.update_job(job.name, child_pid=child.pid)
    stop_deadline: float | None = None
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if stop.requested and stop_deadline is None:
            # One SIGINT: the trainer saves a checkpoint and exits (a second one could cut the
            # save short, so no more signals until the grace period is over).
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)
            stop_deadline = time.monotonic() + STOP_GRACE_S
        if stop_deadline is not None and time.monotonic() > stop_deadline:
            child.kill()


def supervise(name: str) -> int:
    registry = Registry()
    job = registry.get_job(name)
    if job is None:
        say(f"no job named {name!r} in {registry.path}")
        return 2
    stop = _StopRequested()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    registry.update_job(name, pid=os.getpid(), pid_started=processes.process_identity(os.getpid()))

    limit = max_running_jobs()
    announced = False
    while (state := claim_slot(registry, job, limit)) == "wait":
        if not announced:
            say(f"queued: waiting for a free slot (BOXTUNE_MAX_RUNNING_JOBS={limit})")
            announced = True
        if stop.requested:
            break
        time.sleep(SLOT_POLL_S)
    if state != "claimed":
        say("stopped before it started")
        registry.update_job(
            name,
            when_status=(QUEUED,),
            status=STOPPED,
            ended_at=time.time(),
            failure_reason="stopped by the user",
        )
        return 0
    say(f"job {name} started")
    started = time.monotonic()

    code = run_command(job, registry, stop)
    elapsed = time.monotonic() - started
    if stop.requested or registry.get_job(name).status == STOPPED:
        # A signal sent to the supervisor alone (not through stop_job) stops the job too.
        registry.update_job(
            name,
            when_status=(RUNNING,),
            status=STOPPED,
            ended_at=time.time(),
            failure_reason="stopped by a signal to the job's supervisor",
        )
        registry.update_job(name, exit_code=code)
        say(f"job {name} stopped after {elapsed:.1f} s ({processes.describe_exit(code)})")
        return 0
    if code != 0:
        detail = logs.failure_reason(logs.read_tail(Path(job.log_path)))
        reason = f"training failed ({processes.describe_exit(code)})"
        reason += f": {detail}" if detail else ""
        registry.update_job(
            name,
            when_status=(RUNNING,),
            status=FAILED,
            exit_code=code,
            ended_at=time.time(),
            failure_reason=reason,
        )
        say(f"job {name} failed after {elapsed:.1f} s ({processes.describe_exit(code)})")
        return 0
    try:
        model_data = publish(job) if job.output_path else None
    except BoxtuneError as exc:
        registry.update_job(
            name,
            when_status=(RUNNING,),
            status=FAILED,
            exit_code=code,
            ended_at=time.time(),
            failure_reason=f"could not publish the model: {exc}",
        )
        say(f"job {name} failed: could not publish the model: {exc}")
        return 0
    registry.update_job(
        name,
        when_status=(RUNNING,),
        status=COMPLETED,
        exit_code=code,
        ended_at=time.time(),
        **({"model_data": model_data} if model_data else {}),
    )
    say(f"job {name} completed in {elapsed:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m boxtune.jobs.supervisor JOB_NAME", file=sys.stderr)
        return 2
    try:
        return supervise(argv[0])
    except Exception as exc:  # a bug here must not leave the job "running"
        import traceback

        traceback.print_exc()
        Registry().update_job(
            argv[0],
            when_status=(QUEUED, RUNNING),
            status=FAILED,
            ended_at=time.time(),
            failure_reason=f"the job supervisor crashed: {type(exc).__name__}: {exc}",
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Job registry: real background processes, real signals, real SQLite under BOXTUNE_HOME."""

from __future__ import annotations

import io
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from boxtune import jobs
from boxtune.errors import BoxtuneError
from boxtune.jobs import logs
from boxtune.jobs.store import Registry

# A stand-in for `boxtune train`: logs like it, writes metrics.jsonl and an artifact with
# model.tar.gz into train-output/ (the job's cwd is its work dir), sleeps SLEEP seconds first.
FAKE_TRAINER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    print("[Epoch 0], Speed: 1.000 samples/sec, loss=0.5000.", flush=True)
    time.sleep(float(sys.argv[1]))
    out = Path("train-output")
    out.mkdir(exist_ok=True)
    (out / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "loss": 0.5}) + "\\n")
    model = out / "model"
    model.mkdir(exist_ok=True)
    (model / "boxtune-model.json").write_text("{}")
    (model / "model.tar.gz").write_bytes(b"tarball")
    print("done", flush=True)
    """
)


def fake_command(sleep_s: float = 0.0) -> list[str]:
    return [sys.executable, "-c", FAKE_TRAINER, str(sleep_s)]


def wait_for_status(name: str, status: str, timeout: float = 30.0) -> jobs.JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(name)
        if job.status == status:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {name} is {jobs.get_job(name).status}, not {status}")


def test_job_goes_queued_running_completed_and_publishes(tmp_path):
    blocker = jobs.submit_job(fake_command(2.0), name="blocker")
    job = jobs.submit_job(fake_command(0.0), name="second", output_path=str(tmp_path / "out"))
    assert job.status == "queued"
    assert job.model_data == str(tmp_path / "out/second/output/model.tar.gz")

    wait_for_status("blocker", "running")
    # One job at a time (BOXTUNE_MAX_RUNNING_JOBS=1): the second waits for the first.
    assert jobs.get_job("second").status == "queued"
    assert jobs.wait_for_job("blocker", timeout=60).status == "completed"

    final = jobs.wait_for_job("second", timeout=60)
    assert final.status == "completed", final.failure_reason
    assert final.exit_code == 0
    assert final.started_at >= jobs.get_job("blocker").ended_at - 1
    assert final.ended_at >= final.started_at >= final.created_at
    assert Path(final.model_data).read_bytes() == b"tarball"
    assert (tmp_path / "out/second/output/boxtune-model.json").exists()
    assert final.metrics == [{"epoch": 0, "loss": 0.5}]
    log = Path(final.log_path).read_text()
    assert "loss=0.5000." in log
    assert "completed" in log
    assert blocker.model_data is None


def test_failing_job_surfaces_the_error_and_keeps_the_log():
    script = (
        "import sys; print('loading dataset'); "
        "print('error: annotations.json: annotation 7: bbox [5, 5, 3, 9] has xmax < xmin', "
        "file=sys.stderr); print('hint: boxes are [xmin, ymin, xmax, ymax] in pixels', "
        "file=sys.stderr); sys.exit(1)"
    )
    jobs.submit_job([sys.executable, "-c", script], name="bad-boxes")
    final = jobs.wait_for_job("bad-boxes", timeout=60)
    assert final.status == "failed"
    assert final.exit_code == 1
    first_line = final.failure_reason.splitlines()[0]
    assert "exit code 1" in first_line
    assert "annotation 7: bbox [5, 5, 3, 9] has xmax < xmin" in first_line
    assert "hint: boxes are" in final.failure_reason
    assert "loading dataset" in Path(final.log_path).read_text()  # the full log is kept


def test_killed_supervisor_is_marked_failed_not_left_running():
    jobs.submit_job(fake_command(60.0), name="doomed")
    job = wait_for_status("doomed", "running")
    os.killpg(job.pid, signal.SIGKILL)  # the job's whole process group, as `kill -9 -PGID`
    deadline = time.monotonic() + 10
    while jobs.get_job("doomed").status == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    listed = {j.name: j for j in jobs.list_jobs()}
    assert listed["doomed"].status == "failed"
    reason = listed["doomed"].failure_reason
    assert f"pid {job.pid}" in reason and "ended without recording a result" in reason
    assert "loss=0.5000." in reason  # the last log lines come with it


def test_killed_trainer_is_recorded_with_the_signal():
    jobs.submit_job(fake_command(60.0), name="oom")
    job = wait_for_status("oom", "running")
    deadline = time.monotonic() + 10
    while not job.child_pid and time.monotonic() < deadline:
        job = jobs.get_job("oom")
    os.kill(job.child_pid, signal.SIGKILL)
    final = jobs.wait_for_job("oom", timeout=30)
    assert final.status == "failed"
    assert "killed by signal SIGKILL (9)" in final.failure_reason
    assert final.exit_code == -9


def test_stop_running_and_queued_jobs():
    jobs.submit_job(fake_command(60.0), name="long")
    jobs.submit_job(fake_command(0.0), name="waiting")
    running = wait_for_status("long", "running")
    assert jobs.get_job("waiting").status == "queued"

    stopped = jobs.stop_job("long", grace_s=5)
    assert stopped.status == "stopped"
    assert not jobs.processes.is_alive(running.pid, running.pid_started)
    assert not jobs.processes.is_alive(running.child_pid)

    # The queued one now gets the slot; stop it before or while it runs: it ends "stopped"
    # or "completed" (it takes no time), never "failed".
    assert jobs.stop_job("waiting", grace_s=5).status in ("stopped", "completed")
    assert jobs.get_job("long").status == "stopped"  # stopping twice changes nothing
    assert jobs.stop_job("long").status == "stopped"


def test_names_are_validated_and_unique():
    with pytest.raises(BoxtuneError, match="invalid job name"):
        jobs.submit_job(fake_command(), name="bad name!")
    jobs.submit_job(fake_command(), name="unique")
    with pytest.raises(BoxtuneError, match="already exists"):
        jobs.submit_job(fake_command(), name="unique")
    with pytest.raises(BoxtuneError, match="no training job named 'nope'"):
        jobs.get_job("nope")
    generated = jobs.name_from_base("pytorch-od1-efficientdet-lite0-320 fine tune")
    assert jobs.validate_name(generated) == generated and len(generated) <= 63
    jobs.wait_for_job("unique", timeout=30)


def test_failure_reason_extraction():
    traceback_log = textwrap.dedent(
        """\
        [Epoch 0], Speed: 1.0 samples/sec, loss=0.1.
        Traceback (most recent call last):
          File "/x/train.py", line 10, in <module>
            step()
          File "/x/loop.py", line 3, in step
            raise RuntimeError("CUDA is not available")
        RuntimeError: CUDA is not available
        [boxtune-job] job x failed
        """
    )
    reason = logs.failure_reason(traceback_log)
    assert reason.splitlines()[0] == "RuntimeError: CUDA is not available"
    assert 'File "/x/loop.py", line 3' in reason
    assert logs.failure_reason("a\nb\nc") == "a\nb\nc"
    assert logs.failure_reason("") is None


def test_logs_follow_until_the_job_ends():
    jobs.submit_job(fake_command(1.0), name="chatty")
    out = io.StringIO()
    final = jobs.stream_logs("chatty", out, poll_s=0.1)
    assert final.status == "completed"
    text = out.getvalue()
    assert text.index("loss=0.5000.") < text.index("done") < text.index("completed")


def _hammer_registry(home: str, worker: int) -> None:
    os.environ["BOXTUNE_HOME"] = home
    registry = Registry()
    for i in range(25):
        job = jobs.JobRecord(
            name=f"w{worker}-{i}",
            status="completed",
            model_id=None,
            base_model=None,
            hyperparameters={"epochs": "1"},
            inputs={},
            output_path=None,
            model_data=None,
            work_dir="/tmp",
            log_path="/tmp/log",
            command=["true"],
            created_at=time.time(),
        )
        registry.insert_job(job)
        registry.update_job(job.name, when_status=["completed"], exit_code=i)
        registry.list_jobs(limit=5)


def test_concurrent_writers_from_several_processes(boxtune_home):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_hammer_registry, args=(str(boxtune_home), w)) for w in range(4)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    recorded = Registry().list_jobs()
    assert len(recorded) == 100
    assert {j.exit_code for j in recorded} == set(range(25))


def test_signal_to_the_supervisor_alone_stops_the_job():
    jobs.submit_job(fake_command(60.0), name="terminated")
    job = wait_for_status("terminated", "running")
    os.kill(job.pid, signal.SIGTERM)  # e.g. `kill PID` by hand, not `boxtune jobs stop`
    final = jobs.wait_for_job("terminated", timeout=40)
    assert final.status == "stopped"
    assert "signal" in final.failure_reason
    assert not jobs.processes.is_alive(final.child_pid)


def test_jobs_and_endpoints_cli(capsys):
    from boxtune.cli import main

    jobs.submit_job(fake_command(60.0), name="cli-job")
    wait_for_status("cli-job", "running")
    assert main(["jobs", "list", "--status", "running"]) == 0
    assert "cli-job" in capsys.readouterr().out
    assert main(["jobs", "stop", "cli-job"]) == 0
    assert "cli-job: stopped" in capsys.readouterr().out
    assert main(["jobs", "show", "cli-job"]) == 0
    shown = capsys.readouterr().out
    assert "status:          stopped" in shown and "stopped by the user" in shown
    assert main(["jobs", "show", "no-such-job"]) == 1
    assert "no training job named 'no-such-job'" in capsys.readouterr().err
    assert main(["endpoints", "list"]) == 0
    assert "no endpoints running" in capsys.readouterr().out


# Like the trainer: a KeyboardInterrupt (SIGINT) saves a checkpoint; --resume continues from it.
RESUMABLE_TRAINER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    checkpoint = Path("train-output/checkpoints/last.pt")
    if "--resume" in sys.argv:
        print("resumed from", checkpoint.read_text(), flush=True)
        sys.exit(0)
    try:
        print("training", flush=True)
        time.sleep(60)
    except KeyboardInterrupt:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text("epoch 3")
        print("checkpoint saved", flush=True)
        raise
    """
)


def test_stop_checkpoints_and_resume_continues(capsys):
    from boxtune.cli import main

    jobs.submit_job([sys.executable, "-c", RESUMABLE_TRAINER], name="resumable")
    deadline = time.monotonic() + 30
    while "training" not in Path(jobs.get_job("resumable").log_path).read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert jobs.stop_job("resumable").status == "stopped"
    assert "checkpoint saved" in Path(jobs.get_job("resumable").log_path).read_text()

    assert main(["jobs", "resume", "resumable", "--follow"]) == 0
    final = jobs.get_job("resumable")
    assert final.status == "completed" and final.command[-1] == "--resume"
    assert "resumed from epoch 3" in capsys.readouterr().out
    with pytest.raises(BoxtuneError, match="only stopped or failed jobs resume"):
        jobs.resume_job("resumable")


def test_resume_without_a_checkpoint_is_a_clear_error():
    jobs.submit_job(fake_command(60.0), name="no-checkpoint")
    wait_for_status("no-checkpoint", "running")
    jobs.stop_job("no-checkpoint", grace_s=5)
    with pytest.raises(BoxtuneError, match="no checkpoint to resume from"):
        jobs.resume_job("no-checkpoint")

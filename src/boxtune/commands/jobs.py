"""``boxtune jobs list|show|logs|stop|resume|recover`` and ``boxtune endpoints list|stop``: the
job registry."""

from __future__ import annotations

import argparse
import json
import sys
import time

from boxtune.commands.tables import format_table

STATUS_CHOICES = ("queued", "running", "completed", "failed", "stopped")


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_jobs(subparsers)
    _register_endpoints(subparsers)


def _register_jobs(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="list, inspect, follow, stop and resume background training jobs",
        description="Training jobs started through the SDK (Estimator.fit) run "
        "in the background; their state lives in BOXTUNE_HOME/registry.sqlite3.",
    )
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="the jobs, newest first")
    listing.add_argument(
        "--status",
        choices=STATUS_CHOICES,
        action="append",
        help="only jobs in this state (repeatable)",
    )
    listing.add_argument("--limit", type=int, default=50, help="default: %(default)s")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_jobs_list)

    show = sub.add_parser("show", help="everything about one job, with its metrics per epoch")
    show.add_argument("name", metavar="JOB_NAME")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_jobs_show)

    logs = sub.add_parser("logs", help="print a job's log")
    logs.add_argument("name", metavar="JOB_NAME")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing until the job ends"
    )
    logs.set_defaults(handler=_jobs_logs)

    stop = sub.add_parser("stop", help="stop a queued or running job (it checkpoints first)")
    stop.add_argument("name", metavar="JOB_NAME")
    stop.set_defaults(handler=_jobs_stop)

    resume = sub.add_parser(
        "resume", help="continue a stopped or failed job from its last checkpoint"
    )
    resume.add_argument("name", metavar="JOB_NAME")
    resume.add_argument("-f", "--follow", action="store_true", help="then follow its log")
    resume.set_defaults(handler=_jobs_resume)

    recover = sub.add_parser(
        "recover",
        help="restore a damaged or missing registry from its backup (deletes nothing)",
        description="Move the damaged registry (and its -wal/-shm files) aside to "
        "registry.sqlite3.damaged-<time> and restore boxtune's backup of it "
        "(registry.sqlite3.backup). A sound registry is left as it is.",
    )
    recover.add_argument(
        "--empty",
        action="store_true",
        help="when there is no usable backup: start an empty registry (the damaged file is "
        "still kept aside)",
    )
    recover.set_defaults(handler=_jobs_recover)


def _register_endpoints(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "endpoints",
        help="list and stop background endpoints (started by deploy())",
        description="Endpoints are `boxtune serve` processes started by Estimator.deploy() or "
        "Model.deploy(), kept in BOXTUNE_HOME/registry.sqlite3.",
    )
    sub = parser.add_subparsers(dest="endpoints_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the endpoints, newest first")
    listing.add_argument("--all", action="store_true", help="include stopped and failed ones")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_endpoints_list)
    stop = sub.add_parser("stop", help="stop an endpoint")
    stop.add_argument("name", metavar="ENDPOINT_NAME")
    stop.set_defaults(handler=_endpoints_stop)


# -- formatting ----------------------------------------------------------------------------------
def _ago(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


METRIC_COLUMNS = ("loss", "val_loss", "val_map", "val_map50", "samples_per_second")


def format_metrics(history: list[dict]) -> str:
    columns = [c for c in METRIC_COLUMNS if any(c in record for record in history)]
    rows = [
        [str(r.get("epoch", i)), *(_number(r.get(c)) for c in columns)]
        for i, r in enumerate(history)
    ]
    return format_table(["epoch", *columns], rows)


# -- jobs ------------------------------------------------------------------------------------------
def _jobs_list(args: argparse.Namespace) -> int:
    from boxtune.jobs import list_jobs

    jobs = list_jobs(statuses=args.status, limit=args.limit)
    if args.json:
        print(json.dumps([job.to_json() for job in jobs], indent=2))
        return 0
    if not jobs:
        print("no training jobs yet (start one with Estimator(...).fit(...), see `boxtune demo`)")
        return 0
    rows = [
        [
            job.name,
            job.status,
            job.model_id or job.base_model or "-",
            _ago(job.created_at),
            _duration(job.duration_s),
        ]
        for job in jobs
    ]
    print(format_table(["NAME", "STATUS", "MODEL", "CREATED", "DURATION"], rows))
    failed = [job for job in jobs if job.status == "failed" and job.failure_reason]
    for job in failed:
        print(f"\n{job.name}: {job.failure_reason.splitlines()[0]}")
    if failed:
        print(
            "\n(`boxtune jobs show NAME` for the full reason, `boxtune jobs logs NAME` for the log)"
        )
    return 0


def _jobs_show(args: argparse.Namespace) -> int:
    from boxtune.jobs import get_job

    job = get_job(args.name)
    if args.json:
        print(json.dumps(job.to_json(), indent=2))
        return 0
    fields = [
        ("name", job.name),
        ("status", job.status),
        ("model_id", job.model_id or "-"),
        ("base model", job.base_model or "-"),
        ("inputs", ", ".join(f"{k}={v}" for k, v in job.inputs.items()) or "-"),
        ("hyperparameters", ", ".join(f"{k}={v}" for k, v in job.hyperparameters.items()) or "-"),
        ("model data", _model_data(job)),
        ("created", _ago(job.created_at)),
        ("started", _ago(job.started_at)),
        ("ended", _ago(job.ended_at)),
        ("duration", _duration(job.duration_s)),
        ("pid", str(job.pid or "-")),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
        ("log", job.log_path),
    ]
    for label, value in fields:
        print(f"{label + ':':<17}{value}")
    if job.failure_reason:
        print("reason:")
        for line in job.failure_reason.splitlines():
            print(f"  {line}")
    if job.metrics:
        print("metrics per epoch:")
        for line in format_metrics(job.metrics).splitlines():
            print(f"  {line}")
    return 0


def _model_data(job) -> str:
    if not job.model_data:
        return "-"
    if job.status == "completed":
        return job.model_data
    return f"{job.model_data} (not written: the job is {job.status})"


def _jobs_logs(args: argparse.Namespace) -> int:
    from boxtune.jobs import stream_logs

    job = stream_logs(args.name, sys.stdout, follow=args.follow)
    if args.follow:
        print(f"\njob {job.name} {job.status}", file=sys.stderr)
    return 0


def _jobs_stop(args: argparse.Namespace) -> int:
    from boxtune.jobs import stop_job

    job = stop_job(args.name)
    print(f"job {job.name}: {job.status}")
    return 0


def _jobs_resume(args: argparse.Namespace) -> int:
    from boxtune.jobs import resume_job, stream_logs

    job = resume_job(args.name)
    print(f"job {job.name}: {job.status} (resuming from its last checkpoint)")
    if args.follow:
        job = stream_logs(job.name, sys.stdout, follow=True)
        print(f"\njob {job.name} {job.status}", file=sys.stderr)
    return 0 if job.status != "failed" else 1


def _jobs_recover(args: argparse.Namespace) -> int:
    from boxtune.jobs.registry_file import recover_registry

    recovery = recover_registry(empty=args.empty)
    if recovery.action == "healthy":
        held = f"{recovery.jobs} jobs, {recovery.endpoints} endpoints"
        print(f"{recovery.path}: the registry is sound ({held}); nothing to recover")
        return 0
    for moved in recovery.moved:
        print(f"kept aside: {moved}")
    if recovery.action == "restored" and recovery.backup is not None:
        print(f"restored {recovery.path} from the backup {recovery.backup.describe()}")
    else:
        print(f"started an empty registry at {recovery.path}")
    return 0


# -- endpoints -------------------------------------------------------------------------------------
def _endpoints_list(args: argparse.Namespace) -> int:
    from boxtune.jobs import list_endpoints

    statuses = None if args.all else ["starting", "running"]
    endpoints = list_endpoints(statuses)
    if args.json:
        print(json.dumps([e.to_json() for e in endpoints], indent=2))
        return 0
    if not endpoints:
        print("no endpoints" + ("" if args.all else " running (--all shows stopped ones)"))
        return 0
    rows = [
        [e.name, e.status, e.url, str(e.pid or "-"), e.model_id or e.model, _ago(e.created_at)]
        for e in endpoints
    ]
    print(format_table(["NAME", "STATUS", "URL", "PID", "MODEL", "CREATED"], rows))
    for e in endpoints:
        if e.status == "failed" and e.failure_reason:
            print(f"\n{e.name}: {e.failure_reason.splitlines()[0]} (log: {e.log_path})")
    return 0


def _endpoints_stop(args: argparse.Namespace) -> int:
    from boxtune.jobs import stop_endpoint

    endpoint = stop_endpoint(args.name)
    print(f"endpoint {endpoint.name}: {endpoint.status}")
    return 0

"""Endpoints: ``boxtune serve`` processes started in the background and kept in the registry."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from boxtune.errors import BoxtuneError
from boxtune.jobs import logs, processes
from boxtune.jobs.store import (
    ACTIVE_ENDPOINT_STATUSES,
    FAILED,
    RUNNING,
    STARTING,
    STOPPED,
    EndpointRecord,
    Registry,
    validate_name,
)
from boxtune.jobs.training import job_environment
from boxtune.paths import boxtune_home

DEFAULT_START_TIMEOUT_S = 180.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise BoxtuneError(
                f"port {port} on {host} is already in use ({exc.strerror})",
                hint="pass another port, or leave it out to get a free one; "
                "`boxtune endpoints list` shows the running endpoints",
            ) from exc


def probe(url: str, timeout: float = 2.0) -> tuple[bool, str | None]:
    """(ready, load error): GET /ping is 200 once the model is loaded; a server whose model
    failed to load answers 503 with ``x-boxtune-error-reason: load_failed`` and the error."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status == 200, None
    except urllib.error.HTTPError as exc:
        if exc.headers.get("x-boxtune-error-reason") == "load_failed":
            try:
                return False, str(json.loads(exc.read()).get("error") or "model failed to load")
            except (ValueError, AttributeError):
                return False, "model failed to load"
        return False, None
    except (urllib.error.URLError, OSError):
        return False, None


def ping(url: str, timeout: float = 2.0) -> bool:
    return probe(url, timeout)[0]


def _exit_reason(endpoint: EndpointRecord) -> str:
    detail = logs.failure_reason(logs.read_tail(Path(endpoint.log_path)))
    reason = f"the endpoint process (pid {endpoint.pid}) exited"
    return f"{reason}: {detail}" if detail else reason


def start_endpoint(
    model: str,
    *,
    name: str | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    backend: str | None = None,
    model_id: str | None = None,
    job_name: str | None = None,
    extra_args: list[str] | None = None,
    wait: bool = True,
    timeout: float = DEFAULT_START_TIMEOUT_S,
    registry: Registry | None = None,
) -> EndpointRecord:
    """Start ``boxtune serve --model MODEL`` detached; with ``wait``, return once /ping is 200.

    ``model`` is an artifact location (dir, model.tar.gz, s3://) or a deployable model_id;
    ``backend=None`` lets the model's engine pick its default.
    """
    registry = registry or Registry()
    if name:
        name = validate_name(name, "endpoint")
    else:
        name = registry.claim_name(model_id or "boxtune", "endpoint")
    if port is None:
        port = free_port(host)
    else:
        check_port_free(host, port)
    log_path = boxtune_home() / "endpoints" / name / "endpoint.log"
    if log_path.exists():  # a stopped endpoint's name reused: keep its log apart
        log_path.replace(log_path.with_suffix(f".{int(time.time())}.log"))
    command = processes.python_command(
        "boxtune.cli",
        "serve",
        "--model",
        str(model),
        "--host",
        host,
        "--port",
        str(port),
        *(["--backend", backend] if backend else []),
        *(extra_args or []),
    )
    record = EndpointRecord(
        name=name,
        status=STARTING,
        model=str(model),
        model_id=model_id,
        job_name=job_name,
        host=host,
        port=port,
        backend=backend,
        log_path=str(log_path),
        command=command,
        created_at=time.time(),
    )
    registry.insert_endpoint(record)
    process = processes.spawn_detached(command, log_path, env=job_environment())
    registry.update_endpoint(
        name, pid=process.pid, pid_started=processes.process_identity(process.pid)
    )
    if not wait:
        return get_endpoint(name, registry)
    return wait_until_ready(name, timeout=timeout, registry=registry)


def check_startup(name: str, registry: Registry | None = None) -> EndpointRecord:
    """One look at a starting endpoint, without waiting: ``/ping`` answers 200 → running; the
    model failed to load → stopped and failed (the server would answer 503 forever)."""
    registry = registry or Registry()
    endpoint = get_endpoint(name, registry)
    if endpoint.status != STARTING:
        return endpoint
    ready, load_error = probe(endpoint.url)
    if ready:
        registry.update_endpoint(
            name, when_status=(STARTING,), status=RUNNING, started_at=time.time()
        )
    elif load_error:
        processes.terminate(endpoint.pid, endpoint.pid_started, grace_s=5.0)
        registry.update_endpoint(
            name, status=FAILED, ended_at=time.time(), failure_reason=load_error
        )
    return get_endpoint(name, registry)


def wait_until_ready(
    name: str, timeout: float = DEFAULT_START_TIMEOUT_S, registry: Registry | None = None
) -> EndpointRecord:
    registry = registry or Registry()
    deadline = time.monotonic() + timeout
    while True:
        endpoint = check_startup(name, registry)
        if endpoint.status == RUNNING:
            return endpoint
        if endpoint.status != STARTING:
            raise BoxtuneError(
                f"endpoint {name!r} did not start: {endpoint.failure_reason}",
                hint=f"full log: {endpoint.log_path}",
            )
        if time.monotonic() > deadline:
            stop_endpoint(name, registry=registry)
            registry.update_endpoint(
                name, status=FAILED, failure_reason=f"not ready after {timeout:.0f} s"
            )
            raise BoxtuneError(
                f"endpoint {name!r} did not answer /ping within {timeout:.0f} s",
                hint=f"see its log: {endpoint.log_path}",
            )
        time.sleep(0.5)


def reconcile(endpoint: EndpointRecord, registry: Registry) -> EndpointRecord:
    if endpoint.status not in ACTIVE_ENDPOINT_STATUSES or not endpoint.pid:
        return endpoint
    if processes.is_alive(endpoint.pid, endpoint.pid_started):
        return endpoint
    registry.update_endpoint(
        endpoint.name,
        when_status=ACTIVE_ENDPOINT_STATUSES,
        status=FAILED,
        ended_at=time.time(),
        failure_reason=_exit_reason(endpoint),
    )
    return registry.get_endpoint(endpoint.name) or endpoint


def get_endpoint(name: str, registry: Registry | None = None) -> EndpointRecord:
    registry = registry or Registry()
    endpoint = registry.get_endpoint(name)
    if endpoint is None:
        raise BoxtuneError(
            f"no endpoint named {name!r}",
            where=str(registry.path),
            hint="`boxtune endpoints list` shows the endpoints (kept per BOXTUNE_HOME)",
        )
    return reconcile(endpoint, registry)


def list_endpoints(
    statuses: list[str] | None = None, registry: Registry | None = None
) -> list[EndpointRecord]:
    registry = registry or Registry()
    for endpoint in registry.list_endpoints(ACTIVE_ENDPOINT_STATUSES):
        reconcile(endpoint, registry)
    return registry.list_endpoints(statuses)


def stop_endpoint(
    name: str, registry: Registry | None = None, grace_s: float = 10.0
) -> EndpointRecord:
    """Stop the server (SIGTERM: in-flight requests finish, then SIGKILL after ``grace_s``)."""
    registry = registry or Registry()
    endpoint = get_endpoint(name, registry)
    if endpoint.is_active:
        processes.terminate(endpoint.pid, endpoint.pid_started, grace_s=grace_s)
        registry.update_endpoint(
            name, when_status=ACTIVE_ENDPOINT_STATUSES, status=STOPPED, ended_at=time.time()
        )
    return get_endpoint(name, registry)

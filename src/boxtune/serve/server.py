"""Run the HTTP app under uvicorn as a plain process (one or several workers).

uvicorn handles SIGTERM/SIGINT gracefully: it stops accepting connections, lets in-flight
requests finish (up to ``graceful_timeout_s``), then runs the app's shutdown. With
``workers > 1`` a supervisor process forwards the signal to every worker.

A model that fails to load ends the server, whatever the number of workers, and
:func:`run_server` raises the reason (``boxtune serve`` exits 1): the single process stops its
uvicorn server from the loading thread; a worker writes the reason to a file the parent reads
and fails its startup, which makes uvicorn's supervisor stop every worker and return (older
uvicorn versions restart such a worker instead: the parent then stops them as SIGTERM does).

Requests that break the HTTP/1.1 syntax (a NUL in a header) are refused by uvicorn's parser
before the app sees them; the protocol classes here give that 400 the app's JSON error shape.
They also cap the request line and headers at ``max_header_bytes`` (a JSON 431): h11 does it
with its own buffer limit, httptools has none and would buffer a header line of any size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import tempfile
import threading
from http import HTTPStatus
from pathlib import Path

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol
from uvicorn.server import ServerState

from boxtune.engines.onnx_session import ORT_THREADS_ENV  # read by the ONNX Runtime runners
from boxtune.errors import BoxtuneError
from boxtune.model_ref import check_model_ref
from boxtune.serve.config import CONFIG_ENV, LOAD_FAILURE_ENV, ServeConfig, read_load_failure
from boxtune.serve.metrics import MULTIPROC_ENV

APP_FACTORY = "boxtune.serve.app:app_from_env"
# How long a worker's load failure waits for uvicorn's supervisor to stop on its own
SUPERVISOR_GRACE_S = 3.0


class _JsonBadRequest:
    """Mixin for uvicorn's HTTP protocols: their parser's 400 (``send_400_response``) in the
    app's JSON error shape instead of uvicorn's plain text."""

    transport: asyncio.Transport
    server_state: ServerState
    config: uvicorn.Config

    def send_400_response(self, msg: str) -> None:
        self._refuse("headers_too_large" if self._headers_too_large() else "malformed_request")

    def _headers_too_large(self) -> bool:
        return False

    def _refuse(self, reason: str) -> None:
        self.transport.write(_parser_answer(reason, self.server_state.default_headers))
        self.transport.close()


class JsonH11Protocol(_JsonBadRequest, H11Protocol):
    """uvicorn's h11 protocol, answering malformed requests in JSON."""

    conn: h11.Connection

    def _headers_too_large(self) -> bool:
        # h11 refuses a head beyond h11_max_incomplete_event_size, leaving it unprocessed
        limit = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        return len(self.conn.trailing_data[0]) > limit


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional: uvicorn's "auto" falls back to h11 the same way
    HTTP_PROTOCOL: type[asyncio.Protocol] = JsonH11Protocol
else:

    class JsonHttpToolsProtocol(_JsonBadRequest, HttpToolsProtocol):
        """uvicorn's httptools protocol (its default), answering malformed requests in JSON and
        refusing heads larger than h11_max_incomplete_event_size, as h11 does."""

        _reading_head = True
        _head_bytes = 0

        def data_received(self, data: bytes) -> None:
            if self._reading_head:
                self._head_bytes += len(data)
            super().data_received(data)
            # Checked after parsing: a chunk that ends the head may carry body bytes too
            if self._headers_too_large() and not self.transport.is_closing():
                self._refuse("headers_too_large")

        def _headers_too_large(self) -> bool:
            limit = self.config.h11_max_incomplete_event_size
            return self._reading_head and limit is not None and self._head_bytes > limit

        def on_headers_complete(self) -> None:
            self._reading_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_head, self._head_bytes = True, 0

    HTTP_PROTOCOL = JsonHttpToolsProtocol


@functools.cache
def _parser_error(reason: str) -> tuple[int, bytes]:
    """Status and JSON body of an answer written below the app, by its reason."""
    from boxtune.serve.app import PARSER_ERRORS, error_body

    error = PARSER_ERRORS[reason]
    return error.status, error_body(error)


def _parser_answer(reason: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 error response; the connection closes after it (the parser is lost)."""
    status, body = _parser_error(reason)
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode("ascii")]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode("ascii"),
        b"x-boxtune-error-reason: " + reason.encode("ascii"),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


class _Terminated(Exception):
    """uvicorn re-raises SIGTERM after its graceful shutdown; we turn it into a clean exit."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


def run_server(config: ServeConfig) -> int:
    """Serve until stopped; returns the exit code. Bad --model references fail before binding;
    a model that fails to load raises its error once the server has stopped."""
    ref = check_model_ref(config.model)
    if config.workers > 1 and ref.kind == "artifact":
        # Download / extract once here: workers doing it at once would race on one cache folder
        from boxtune.artifacts import load_artifact

        config = dataclasses.replace(config, model=str(load_artifact(ref.value).directory))
    own_metrics_dir = None
    if config.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Must be set before any worker imports prometheus_client
        own_metrics_dir = tempfile.mkdtemp(prefix="boxtune-metrics-")
        os.environ[MULTIPROC_ENV] = own_metrics_dir
    if config.workers > 1 and not os.environ.get(ORT_THREADS_ENV):
        # Each worker runs its own model: share the CPUs instead of oversubscribing them
        os.environ[ORT_THREADS_ENV] = str(max(1, _usable_cpus() // config.workers))
    os.environ[CONFIG_ENV] = config.to_env()
    options = dict(
        host=config.host,
        port=config.port,
        timeout_graceful_shutdown=config.graceful_timeout_s,
        access_log=config.access_log,
        log_level="info",
        server_header=False,
        http=HTTP_PROTOCOL,
        timeout_keep_alive=config.keep_alive_timeout_s,
        limit_concurrency=config.max_concurrency,
        h11_max_incomplete_event_size=config.max_header_bytes,  # both protocols (see above)
    )
    failure: BoxtuneError | None = None
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if config.workers > 1:
            failure = _serve_workers(config, options)
        else:
            failure = _serve_one(config, options)
    except _Terminated:
        pass  # in-flight requests were answered before uvicorn returned
    finally:
        signal.signal(signal.SIGTERM, previous)
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)
    if failure is not None:
        raise failure
    return 0


class _StopOnLoadFailure:
    """``on_load_failure`` of the single process: keeps the reason and stops uvicorn."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.error: BoxtuneError | None = None

    def __call__(self, error: BoxtuneError) -> None:
        self.error = error
        if self.server is not None:
            self.server.should_exit = True  # uvicorn's main loop polls it, then shuts down


def _serve_one(config: ServeConfig, options: dict) -> BoxtuneError | None:
    """Serve in this process (the model loads in the background); the load failure, if any."""
    from boxtune import console
    from boxtune.serve.app import create_app

    console.configure()  # a server is a program: it shows its log as the CLI does
    stop = _StopOnLoadFailure()
    server = uvicorn.Server(uvicorn.Config(create_app(config, on_load_failure=stop), **options))
    stop.server = server
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises SIGINT after shutting down
        server.run()
    return stop.error


def _serve_workers(config: ServeConfig, options: dict) -> BoxtuneError | None:
    """Serve from ``config.workers`` processes; the load failure a worker reported, if any."""
    with tempfile.TemporaryDirectory(prefix="boxtune-serve-") as folder:
        report = Path(folder) / "load-failure.json"
        os.environ[LOAD_FAILURE_ENV] = str(report)  # inherited by the workers
        done = threading.Event()
        watcher = threading.Thread(
            target=_stop_when_reported, args=(report, done), name="boxtune-watch", daemon=True
        )
        watcher.start()
        try:
            uvicorn.run(APP_FACTORY, factory=True, workers=config.workers, **options)
        finally:
            done.set()
            watcher.join()
            os.environ.pop(LOAD_FAILURE_ENV, None)
        return read_load_failure(report)


def _stop_when_reported(report: Path, done: threading.Event) -> None:
    """Stop the supervisor (SIGTERM to this process: it stops every worker and returns) once a
    worker reported a load failure, unless uvicorn stopped by itself within the grace time.
    A kill racing the supervisor's own return is harmless: its SIGTERM handler stays installed
    until :func:`run_server` restores the previous one, after this thread has ended."""
    while not done.wait(0.2):
        if report.exists():
            if not done.wait(SUPERVISOR_GRACE_S):
                os.kill(os.getpid(), signal.SIGTERM)
            return

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
uvicorn only times a connection idle between requests (``keep_alive_timeout_s``); these
classes also time the reading of each request, its head (``header_timeout_s``) and its body
(``body_timeout_s``), and answer a client too slow for either with a JSON 408 (see
:class:`_ReadDeadlines`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import signal
import tempfile
import threading
from http import HTTPStatus
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol
from uvicorn.server import ServerState

from boxtune.engines.onnx_session import ORT_THREADS_ENV  # read by the ONNX Runtime runners
from boxtune.errors import BoxtuneError
from boxtune.model_ref import check_model_ref
from boxtune.serve.config import (
    CONFIG_ENV,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    LOAD_FAILURE_ENV,
    ServeConfig,
    read_load_failure,
)
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


HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"


class _ReadDeadlines:
    """Mixin for uvicorn's HTTP protocols: deadlines on reading each request, of which uvicorn
    has none (it only closes a connection idle between two requests, after keep-alive).

    - The request line and headers must arrive within ``header_timeout_s`` of the request's
      first byte; for the first request of a connection, of the connection opening. A new
      connection that never sends a byte is thus closed after ``header_timeout_s`` too (not
      after keep-alive, which times reuse and may be 0), silently: there is no request to
      answer. A client that has begun a request gets a JSON 408.
    - The whole body must arrive within ``body_timeout_s`` of the end of the headers: a total
      deadline, which a body sent one byte a second cannot push back. The client gets a JSON
      408 unless the app has begun answering; the app, waiting for the rest of the body, sees
      the client disconnect (uvicorn's cycle is marked disconnected, as on connection_lost).

    A request pipelined behind one still being answered is not timed until that answer is
    complete: the server does not read it meanwhile. One ``loop.call_later`` handle per
    connection at most, replaced as the connection moves on and cancelled when it is lost.
    The subclass tells what is being read: :meth:`_awaited` and :meth:`_head_begun`.
    """

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    logger: logging.Logger
    server_state: ServerState
    client: tuple[str, int] | None
    cycle: Any  # uvicorn's RequestResponseCycle of the latest request; None before the first

    def __init__(
        self,
        *args: Any,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
        body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind: str | None = None
        self._deadline_cycle: Any = None  # the cycle current when the deadline was set
        self._upgraded = False

    def _awaited(self) -> str | None:
        """HEADER_TIMEOUT or BODY_TIMEOUT for what the connection is reading now, else None
        (idle between requests, or waiting for the app)."""
        raise NotImplementedError

    def _head_begun(self) -> bool:
        """Whether a byte of the awaited request head has arrived."""
        raise NotImplementedError

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._update_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._update_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_deadline()  # a pipelined request may be read from now on

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._upgraded = True  # the transport belongs to another protocol from now on
        self._cancel_deadline()
        super().handle_websocket_upgrade(*args)

    def _update_deadline(self) -> None:
        closing = self._upgraded or self.transport.is_closing()
        kind = None if closing else self._awaited()
        if kind is not None and kind == self._deadline_kind and self.cycle is self._deadline_cycle:
            return  # the same head or body as before: its deadline stands
        self._cancel_deadline()
        if kind is not None:
            seconds = self.header_timeout_s if kind == HEADER_TIMEOUT else self.body_timeout_s
            self._deadline = self.loop.call_later(seconds, self._deadline_passed, kind, seconds)
            self._deadline_kind, self._deadline_cycle = kind, self.cycle

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self._deadline_kind = self._deadline_cycle = None

    def _deadline_passed(self, kind: str, seconds: float) -> None:
        self._deadline = self._deadline_kind = self._deadline_cycle = None
        if self._upgraded or self.transport.is_closing():
            return
        if kind == HEADER_TIMEOUT:
            answer = self._head_begun()
        else:
            cycle = self.cycle
            answer = not cycle.response_started
            if not cycle.response_complete:
                # What connection_lost does, now: the app's receive() returns http.disconnect
                # and its send() writes nothing (the 408 below is the answer)
                cycle.disconnected = True
                cycle.message_event.set()
        if answer:
            client = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
            what = "head" if kind == HEADER_TIMEOUT else "body"
            self.logger.warning("%srequest %s not received within %g s: 408", client, what, seconds)
            self.transport.write(_parser_answer(kind, self.server_state.default_headers, seconds))
        self.transport.close()


class JsonH11Protocol(_JsonBadRequest, _ReadDeadlines, H11Protocol):
    """uvicorn's h11 protocol, answering malformed requests in JSON and timing the reading of
    each request."""

    conn: h11.Connection

    def _headers_too_large(self) -> bool:
        # h11 refuses a head beyond h11_max_incomplete_event_size, leaving it unprocessed
        limit = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        return len(self.conn.trailing_data[0]) > limit

    def _awaited(self) -> str | None:
        # h11 reads one request at a time: a pipelined one waits (PAUSED) with its client in
        # DONE until the answer before it is complete, then becomes IDLE with its bytes buffered
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            return BODY_TIMEOUT
        if state is h11.IDLE and (self.cycle is None or self._head_begun()):
            return HEADER_TIMEOUT
        return None

    def _head_begun(self) -> bool:
        return bool(self.conn.trailing_data[0])  # h11 keeps an incomplete head buffered


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional: uvicorn's "auto" falls back to h11 the same way
    HTTP_PROTOCOL: type[asyncio.Protocol] = JsonH11Protocol
else:

    class JsonHttpToolsProtocol(_JsonBadRequest, _ReadDeadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol (its default), answering malformed requests in JSON,
        refusing heads larger than h11_max_incomplete_event_size, as h11 does, and timing the
        reading of each request."""

        _reading_head = True  # False from the end of a head to the end of its body
        _head_bytes = 0
        _head_open = False  # a byte of the head being read has arrived

        def data_received(self, data: bytes) -> None:
            if self._reading_head:
                self._head_bytes += len(data)
                self._head_open = True
            super().data_received(data)
            # Checked after parsing: a chunk that ends the head may carry body bytes too
            if self._headers_too_large() and not self.transport.is_closing():
                self._refuse("headers_too_large")

        def _headers_too_large(self) -> bool:
            limit = self.config.h11_max_incomplete_event_size
            return self._reading_head and limit is not None and self._head_bytes > limit

        def _awaited(self) -> str | None:
            # httptools reads on while an answer is pending: a pipelined request is queued
            # (self.pipeline) once its head is read, and its reading paused
            if not self._reading_head:
                return None if self.pipeline else BODY_TIMEOUT
            previous = self.cycle
            if previous is None or (self._head_open and previous.response_complete):
                return HEADER_TIMEOUT
            return None

        def _head_begun(self) -> bool:
            return self._head_open

        def on_message_begin(self) -> None:
            self._head_open = True  # also for a pipelined head in the chunk that ended one
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._reading_head = self._head_open = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_head, self._head_bytes = True, 0

    HTTP_PROTOCOL = JsonHttpToolsProtocol


@functools.cache
def _parser_error(reason: str, limit_s: float | None = None) -> tuple[int, bytes]:
    """Status and JSON body of an answer written below the app, by its reason (and, for a
    timeout, its limit in seconds)."""
    from boxtune.serve.app import PARSER_ERRORS, ErrorResponse, error_body

    if reason in PARSER_ERRORS:
        error = PARSER_ERRORS[reason]
    else:
        what, after, option, hint = _TIMEOUT_ERRORS[reason]
        error = ErrorResponse(
            408,
            f"request timeout: the {what} did not arrive within the server's limit of "
            f"{limit_s:g} s{after}",
            f"{hint}, or start the server with a larger {option}",
            reason,
        )
    return error.status, error_body(error)


# What each read deadline (see _ReadDeadlines) tells the client, and which option sets it
_TIMEOUT_ERRORS = {
    HEADER_TIMEOUT: (
        "request line and headers",
        "",
        "--header-timeout-s",
        "send the request head in one go",
    ),
    BODY_TIMEOUT: (
        "whole request body",
        " after the headers",
        "--body-timeout-s",
        "send the body (exactly Content-Length bytes) right after the headers",
    ),
}


def _parser_answer(
    reason: str, default_headers: list[tuple[bytes, bytes]], limit_s: float | None = None
) -> bytes:
    """A whole HTTP/1.1 error response; the connection closes after it (the parser is lost,
    or the client too slow)."""
    status, body = _parser_error(reason, limit_s)
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
        # A partial of a module-level class: it pickles, for spawned --workers processes
        http=functools.partial(
            HTTP_PROTOCOL,
            header_timeout_s=config.header_timeout_s,
            body_timeout_s=config.body_timeout_s,
        ),
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

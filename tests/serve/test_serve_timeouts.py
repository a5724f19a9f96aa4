"""Read deadlines of a real server, under both of uvicorn's HTTP parsers: clients that drip a
request head or body one byte a second, and connections that never send a byte, are cut off
(``--header-timeout-s``, ``--body-timeout-s``) instead of holding a connection for ever.

h11 is what ``boxtune serve`` falls back to where httptools cannot be imported: the h11 server
runs with an ``httptools`` package on its path that fails to import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator

import pytest
from serve_fakes import FAKE_MODEL
from serve_process import SERVE_TESTS_DIR, ServerProcess
from test_serve_hardening import _exchange, _raw_request
from test_serve_http import assert_still_serving

from boxtune.cli import build_parser
from boxtune.serve.config import (
    CONFIG_ENV,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    ServeConfig,
)

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
SLOW_CLIENTS = 30
IDLE_CONNECTIONS = 200
DRIP_INTERVAL_S = 1.0  # one byte a second
SLOW_HEAD = (
    b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-image\r\n"
    b"Accept: application/json\r\nContent-Length: 1000\r\n\r\n"
)
BODY_SIZE = 1000


def _limit(timeout_s: float) -> float:
    """By when a connection must be cut off: generous for a loaded 2-core machine, and still
    far short of a drip that lasts as long as it likes (a 100-byte head: 100 s)."""
    return 3 * timeout_s + 2.0


def _hidden_httptools(folder) -> dict:
    """The environment of a server that cannot import httptools."""
    package = folder / "no-httptools" / "httptools"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("hidden by test_serve_timeouts")\n')
    paths = [str(package.parent), str(SERVE_TESTS_DIR), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _parser_of(server: ServerProcess) -> str:
    """Which parser answers: h11 lets a control character through to the app, httptools not."""
    _, headers, _ = _exchange(server.port, _raw_request(b"application/json;n_predictions=\x015"))
    return {"malformed_request": "httptools", "bad_accept_parameter": "h11"}[
        headers["x-boxtune-error-reason"]
    ]


@contextlib.contextmanager
def _timeouts_server(folder, parser: str, *args: str) -> Iterator[ServerProcess]:
    env = _hidden_httptools(folder) if parser == "h11" else None
    timeouts = (
        "--header-timeout-s",
        str(HEADER_TIMEOUT_S),
        "--body-timeout-s",
        str(BODY_TIMEOUT_S),
    )
    server = ServerProcess(FAKE_MODEL, *timeouts, *args, log_path=folder / "server.log", env=env)
    with server:
        server.wait_ready()
        assert _parser_of(server) == parser
        yield server
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module", params=["httptools", "h11"])
def timeouts_server(request, tmp_path_factory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp(f"timeouts-{request.param}")
    with _timeouts_server(folder, request.param) as server:
        yield server


# -- clients ----------------------------------------------------------------------------------


async def _client(port: int, first: bytes, drip: bytes, limit_s: float) -> tuple[float, bytes]:
    """Connect, send ``first``, then ``drip`` one byte a second until the server closes the
    connection or ``limit_s`` has passed: the seconds from connecting to the server's close
    (inf if it did not close), and what it sent."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    started = time.monotonic()

    async def read_all() -> tuple[float, bytes]:
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := await loop.sock_recv(sock, 65536):
                answer += chunk
        return time.monotonic() - started, answer

    reader: asyncio.Task | None = None
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        reader = asyncio.create_task(read_all())
        if first:
            await loop.sock_sendall(sock, first)
        remaining = iter(drip)
        while (left := started + limit_s - time.monotonic()) > 0:
            byte = next(remaining, None)
            if byte is not None:
                with contextlib.suppress(OSError):  # closed meanwhile: the reader sees it
                    await loop.sock_sendall(sock, bytes([byte]))
            # The pace of the drip, and a wait for the server's close that ends it
            done, _ = await asyncio.wait({reader}, timeout=min(DRIP_INTERVAL_S, left))
            if done:
                return reader.result()
        return float("inf"), b""
    finally:
        if reader is not None:
            reader.cancel()
        sock.close()


def _run_clients(port: int, count: int, first: bytes, drip: bytes, limit_s: float) -> list:
    async def run_all() -> list:
        return await asyncio.gather(*(_client(port, first, drip, limit_s) for _ in range(count)))

    return asyncio.run(run_all())


def _assert_cut_off(results: list, timeout_s: float, limit_s: float) -> None:
    seconds = sorted(s for s, _ in results)
    still_open = sum(s == float("inf") for s in seconds)
    assert not still_open, f"{still_open} of {len(seconds)} connections open after {limit_s} s"
    assert seconds[0] >= timeout_s - 0.05, seconds  # not before the deadline either
    assert seconds[-1] < limit_s, seconds


def _assert_408(answer: bytes, reason: str, option: str) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    assert status_line == "HTTP/1.1 408 Request Timeout", answer[:300]
    assert headers["content-type"] == "application/json"
    assert headers["x-boxtune-error-reason"] == reason
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)
    assert set(error) == {"error", "hint"}
    assert error["error"].startswith("request timeout: ")
    assert option in error["hint"]


# -- the deadlines ----------------------------------------------------------------------------


def test_slow_header_clients_get_a_408_and_are_cut_off(timeouts_server):
    limit = _limit(HEADER_TIMEOUT_S)
    results = _run_clients(timeouts_server.port, SLOW_CLIENTS, b"", SLOW_HEAD, limit)
    _assert_cut_off(results, HEADER_TIMEOUT_S, limit)
    for _, answer in results:
        _assert_408(answer, "header_timeout", "--header-timeout-s")
    assert_still_serving(timeouts_server)


def test_slow_body_clients_get_a_408_and_are_cut_off(timeouts_server):
    # Valid headers at once, then Content-Length 1000 at one byte a second: a total deadline,
    # not an idle one, or each byte would push it back
    limit = _limit(BODY_TIMEOUT_S)
    results = _run_clients(
        timeouts_server.port, SLOW_CLIENTS, SLOW_HEAD, b"\xff" * BODY_SIZE, limit
    )
    _assert_cut_off(results, BODY_TIMEOUT_S, limit)
    for _, answer in results:
        _assert_408(answer, "body_timeout", "--body-timeout-s")
    assert_still_serving(timeouts_server)  # the app did not hang on the bodies it waited for


def test_idle_new_connections_are_closed_after_the_header_timeout(timeouts_server):
    limit = _limit(HEADER_TIMEOUT_S)
    results = _run_clients(timeouts_server.port, IDLE_CONNECTIONS, b"", b"", limit)
    _assert_cut_off(results, HEADER_TIMEOUT_S, limit)
    assert {answer for _, answer in results} == {b""}  # no request, so no answer: just closed
    assert_still_serving(timeouts_server)


def test_a_keep_alive_connection_outlives_the_header_timeout(timeouts_server):
    # The header deadline of a later request counts from its first byte, not from the
    # connection opening: idle between requests is keep-alive's business (5 s here)
    ping = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", timeouts_server.port), timeout=10) as conn:
        for request in range(2):
            if request:
                time.sleep(HEADER_TIMEOUT_S + 0.3)  # the idle time under test
            conn.sendall(ping)
            answer = b""
            while b'"status":"ready"' not in answer:  # the whole (small) answer
                chunk = conn.recv(65536)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_pipelined_partial_head_is_timed_after_the_answers_before_it(timeouts_server):
    ping = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"
    limit = _limit(HEADER_TIMEOUT_S)
    [(seconds, answer)] = _run_clients(timeouts_server.port, 1, ping * 2 + b"GET /pi", b"", limit)
    assert HEADER_TIMEOUT_S - 0.05 <= seconds < limit
    first, second, last = answer.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and second.startswith(b"200 ")
    _assert_408(b"HTTP/1.1 " + last, "header_timeout", "--header-timeout-s")


def test_the_deadlines_reach_every_worker(tmp_path):
    # The protocol's settings travel to spawned worker processes (a pickled partial)
    with _timeouts_server(tmp_path, "httptools", "--workers", "2") as server:
        limit = _limit(HEADER_TIMEOUT_S)
        idle = _run_clients(server.port, 20, b"", b"", limit)
        slow = _run_clients(server.port, 10, b"", SLOW_HEAD, limit)
        _assert_cut_off(idle + slow, HEADER_TIMEOUT_S, limit)
        for _, answer in slow:
            _assert_408(answer, "header_timeout", "--header-timeout-s")
        assert_still_serving(server)


# -- the options ------------------------------------------------------------------------------


def test_the_options_reach_the_server_config(monkeypatch):
    from boxtune.serve import server

    configs: list[ServeConfig] = []
    monkeypatch.setattr(server, "run_server", lambda config: configs.append(config) or 0)
    args = build_parser().parse_args(["serve", "--model", "m", "--header-timeout-s", "2.5"])
    assert args.handler(args) == 0
    [config] = configs
    assert (config.header_timeout_s, config.body_timeout_s) == (2.5, DEFAULT_BODY_TIMEOUT_S)
    assert ServeConfig(model="m").header_timeout_s == DEFAULT_HEADER_TIMEOUT_S
    monkeypatch.setenv(CONFIG_ENV, config.to_env())  # how worker processes get it
    assert ServeConfig.from_env() == config


@pytest.mark.parametrize("option", ["--header-timeout-s", "--body-timeout-s"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_timeout_must_be_a_positive_number_of_seconds(capsys, option, value):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--model", "m", option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: " in capsys.readouterr().err

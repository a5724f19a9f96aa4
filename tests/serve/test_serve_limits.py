"""Limits of a real server: the per-request deadline, the bounded queue, idle keep-alive
connections, the number of connections and the size of the request head."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_fakes import FAKE_MODEL, FakeRunner, encode, scene
from serve_process import ServerProcess
from test_serve_hardening import _serving
from test_serve_http import PNG, assert_error, assert_still_serving, expected, post

from boxtune.serve.app import create_app
from boxtune.serve.config import DEFAULT_MAX_HEADER_BYTES, ServeConfig
from boxtune.serve.predictor import InProcessPredictor
from boxtune.serve.server import JsonH11Protocol

SLOW_WIDTH = 77  # the fake runner sleeps SLOW_S on a call holding an image this wide
SLOW_S = 2.5
SLOW_PNG = encode(scene(SLOW_WIDTH, 40, {0: (5, 5, 30, 30)}))
HUGE_HEADER_BYTES = 32 * 1024 * 1024


@contextlib.contextmanager
def _server(tmp_path, *args: str, env: dict | None = None) -> Iterator[ServerProcess]:
    with ServerProcess(FAKE_MODEL, *args, log_path=tmp_path / "server.log", env=env) as server:
        server.wait_ready()
        yield server
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory) -> Iterator[ServerProcess]:
    env = {"BOXTUNE_FAKE_SLOW_WIDTH": str(SLOW_WIDTH), "BOXTUNE_FAKE_SLOW_S": str(SLOW_S)}
    folder = tmp_path_factory.mktemp("limits-server")
    with _server(folder, "--request-timeout-s", "1", "--keep-alive-timeout-s", "1", env=env) as s:
        yield s


# -- the per-request deadline -----------------------------------------------------------------


def test_a_request_past_its_deadline_gets_a_json_504(limits_server):
    started = time.monotonic()
    response = post(limits_server, SLOW_PNG)
    seconds = time.monotonic() - started
    assert_error(response, 504, "no answer within the server's limit of 1 s")
    assert response.headers["x-boxtune-error-reason"] == "deadline_exceeded"
    assert 0.9 <= seconds <= 3.0
    # The event loop is free while the slow call still holds the inference thread
    assert httpx.get(f"{limits_server.url}/ping", timeout=0.5).status_code == 200
    time.sleep(SLOW_S - seconds + 0.2)  # the slow call is over: the next one runs at once
    assert_still_serving(limits_server)


# -- the bounded queue ------------------------------------------------------------------------


def test_a_full_queue_answers_503_with_retry_after(tmp_path):
    args = ("--max-queue", "2", "--max-batch-size", "1")
    with _server(tmp_path, *args, env={"BOXTUNE_FAKE_DELAY_S": "0.5"}) as server:
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: post(server, PNG), range(8)))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503}, statuses
        for response in responses:
            if response.status_code == 503:
                assert_error(response, 503, "server overloaded")
                assert response.headers["retry-after"] == "1"
                assert response.headers["x-boxtune-error-reason"] == "queue_full"
            else:
                assert response.json() == expected(PNG)
        assert_still_serving(server)


# -- connections ------------------------------------------------------------------------------


def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(limits_server):
    with socket.create_connection(("127.0.0.1", limits_server.port), timeout=10) as conn:
        conn.sendall(b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = b""
        while b'"status":"ready"' not in answer:  # the whole (small) answer
            answer += conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
        idle_since = time.monotonic()
        assert conn.recv(65536) == b""  # the server closed it
        assert time.monotonic() - idle_since < 3.0


def test_connections_beyond_max_concurrency_get_503(tmp_path):
    with _server(tmp_path, "--max-concurrency", "2") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10):
            time.sleep(0.2)  # the server has accepted it
            assert httpx.get(f"{server.url}/ping", timeout=5).status_code == 503
        time.sleep(0.2)  # the server has seen it close
        assert_still_serving(server)


# -- the size of the request head -------------------------------------------------------------


def _send_huge_header(port: int) -> tuple[bytes, float]:
    """A 32 MB header line, sent while the answer is read: what came back, and how fast."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = b"GET /ping HTTP/1.1\r\nHost: test\r\nX-Huge: "

    def send() -> None:
        with contextlib.suppress(OSError):  # the server closes the connection mid-way
            conn.sendall(head)
            for _ in range(HUGE_HEADER_BYTES // 65536):
                conn.sendall(b"a" * 65536)
            conn.sendall(b"\r\n\r\n")

    sender = threading.Thread(target=send, daemon=True)
    started = time.monotonic()
    sender.start()
    answer = b""
    with contextlib.suppress(ConnectionResetError), conn:
        while chunk := conn.recv(65536):
            answer += chunk
    seconds = time.monotonic() - started
    sender.join(10)
    return answer, seconds


def _assert_refused(answer: bytes, seconds: float) -> None:
    # A reset may discard the answer before it is read; an answer, if read, is the 431
    assert seconds < 5.0
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    if answer:
        assert b"x-boxtune-error-reason: headers_too_large" in answer
        assert b'"error":"request headers too large' in answer


def test_a_huge_header_line_is_refused(limits_server):
    _assert_refused(*_send_huge_header(limits_server.port))
    assert_still_serving(limits_server)


def test_a_huge_header_line_is_refused_under_h11():
    app = create_app(ServeConfig(model="fake"), InProcessPredictor(FakeRunner()))
    options = {"h11_max_incomplete_event_size": DEFAULT_MAX_HEADER_BYTES}
    with _serving(app, http=JsonH11Protocol, **options) as port:
        _assert_refused(*_send_huge_header(port))
        assert httpx.get(f"http://127.0.0.1:{port}/ping", timeout=5).status_code == 200

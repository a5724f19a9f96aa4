"""Requests and models that used to get the wrong answer from a real server.

- ``Content-Type: application/octet-stream`` (the managed SDK's default) was a 415.
- ``n_predictions`` values that ``str.isdigit()`` accepts but ``int()`` refuses were a 500.
- A control character in a header got uvicorn's plain-text 400, not boxtune's JSON error.
- A model that failed to load kept one process answering 503 forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from serve_fakes import FakeRunner, encode, scene
from serve_process import ServerProcess, free_port
from test_serve_http import JPEG, PNG, assert_error, expected, post

from boxtune.errors import ModelError
from boxtune.serve import server as serve_server
from boxtune.serve.app import create_app
from boxtune.serve.config import ServeConfig
from boxtune.serve.contract import BadAcceptParameterError, ResponseFormat, parse_accept
from boxtune.serve.predictor import InProcessPredictor
from boxtune.serve.server import JsonH11Protocol

OCTET = "application/octet-stream"
WEBP = encode(scene(64, 64, {2: (10, 10, 50, 50)}), "WEBP", lossless=True)


# -- 1. application/octet-stream --------------------------------------------------------------


@pytest.mark.parametrize("body", [PNG, JPEG, WEBP], ids=["png", "jpeg", "webp"])
def test_octet_stream_bodies_are_sniffed_like_x_image(fake_server, body):
    response = post(fake_server, body, OCTET, accept="application/json;verbose")
    assert response.status_code == 200, response.text
    assert response.json() == expected(body, "application/json;verbose")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"<html>hello</html>", 400, "not an image"),
        (PNG[: len(PNG) // 2], 400, "truncated PNG"),
        (b"", 400, "empty body"),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_octet_stream_that_is_no_image_gets_the_x_image_error(fake_server, body, status, fragment):
    as_octet = assert_error(post(fake_server, body, OCTET), status, fragment)
    assert as_octet == post(fake_server, body, "application/x-image").json()


# -- 2. n_predictions that int() refuses ------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"\xb2",  # "²" once Starlette decodes the header as latin-1: isdigit() but not int()
        b"\xb9",  # "¹"
        b"9" * 5000,  # more digits than int() converts
        b"1001",  # above MAX_N_PREDICTIONS
        b"0",
    ],
    ids=["superscript-two", "superscript-one", "5000-digits", "1001", "zero"],
)
def test_bad_n_predictions_is_a_json_400_naming_the_header(fake_server, value):
    accept = b"application/json;n_predictions=" + value  # bytes: httpx sends them as they are
    response = httpx.post(
        f"{fake_server.url}/invocations",
        content=PNG,
        headers={"Content-Type": b"application/x-image", "Accept": accept},
        timeout=30,
    )
    body = assert_error(
        response, 400, "n_predictions must be a positive integer from 1 to 1000", "Accept header"
    )
    assert response.headers["x-boxtune-error-reason"] == "bad_accept_parameter"
    assert len(body["error"]) < 200  # 5000 digits are not echoed back


def test_n_predictions_up_to_the_maximum_is_served(fake_server):
    response = post(fake_server, PNG, accept="application/json;n_predictions=1000")
    assert response.status_code == 200, response.text
    assert response.json() == expected(PNG)  # fewer boxes than 1000: all of them


@pytest.mark.parametrize("value", ["²", "³", "٣", "9" * 5000, "1001", "10000", "+5", " 5x"])
def test_parse_accept_refuses_what_int_would_choke_on(value):
    with pytest.raises(BadAcceptParameterError, match="from 1 to 1000 in the Accept header"):
        parse_accept(f"application/json;n_predictions={value}")


@pytest.mark.parametrize(("value", "limit"), [("1", 1), ("0007", 7), ("1000", 1000)])
def test_parse_accept_takes_ascii_digits(value, limit):
    assert parse_accept(f"application/json;n_predictions={value}") == ResponseFormat(
        n_predictions=limit
    )


# -- 3. control characters in headers ---------------------------------------------------------


# Small enough to arrive whole: a server closing on unread data would reset the connection
SMALL_PNG = encode(scene(32, 24, {0: (2, 2, 12, 12)}))


def _raw_request(accept: bytes, body: bytes = SMALL_PNG) -> bytes:
    return (
        b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-image\r\n"
        b"Accept: " + accept + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )


def _exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes (what a client can send, unchecked by an HTTP library); the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


PARSER = "malformed_request"  # refused by uvicorn's parser, answered by boxtune.serve.server
APP = "bad_accept_parameter"  # let through by the parser, refused by the app
# The request, and who refuses it under h11, which lets every control character but NUL (and
# whitespace) through; httptools refuses them all.
MALFORMED = [
    pytest.param(_raw_request(b"application/json\x00;verbose"), PARSER, id="nul"),
    pytest.param(_raw_request(b"application/json;n_predictions=\x015"), APP, id="soh"),
    pytest.param(_raw_request(b"application/json\x1f"), APP, id="us"),
    pytest.param(_raw_request(b"application/json\x7f"), APP, id="del"),
    pytest.param(_raw_request(b"\x0bapplication/json"), PARSER, id="vt"),
    pytest.param(b"NOT HTTP AT ALL\r\n\r\n", PARSER, id="request-line"),
]


def _assert_json_400(answer: tuple[int, dict[str, str], bytes], reason: str) -> None:
    status, headers, body = answer
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert headers["x-boxtune-error-reason"] == reason
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)
    assert set(error) == {"error", "hint"}
    assert "control character" in error["error"]
    if reason == PARSER:
        assert error["error"].startswith("malformed HTTP request") and "Accept" in error["hint"]


@pytest.mark.parametrize(("request_bytes", "h11_reason"), MALFORMED)
def test_malformed_request_gets_the_json_error_shape(fake_server, request_bytes, h11_reason):
    # uvicorn's default parser (httptools) refuses every one before the app sees it
    _assert_json_400(_exchange(fake_server.port, request_bytes), PARSER)
    assert httpx.get(f"{fake_server.url}/ping").status_code == 200
    assert post(fake_server, PNG).status_code == 200


def test_obs_text_in_accept_reaches_the_app_and_gets_json(fake_server):
    # Bytes 0x80-0xff are legal header bytes: the app sees them (as latin-1) and answers
    status, headers, body = _exchange(fake_server.port, _raw_request(b"\xff\xfe"))
    assert (status, headers["content-type"]) == (406, "application/json")
    assert set(json.loads(body)) == {"error", "hint"}


@contextlib.contextmanager
def _serving(app, **options) -> Iterator[int]:
    """``app`` under uvicorn in a thread of this process (lifespan included); its port."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def h11_server() -> Iterator[int]:
    """The app under uvicorn's h11 protocol (its choice where httptools is missing)."""
    app = create_app(ServeConfig(model="fake"), InProcessPredictor(FakeRunner()))
    with _serving(app, http=JsonH11Protocol) as port:
        yield port


@pytest.mark.parametrize(("request_bytes", "h11_reason"), MALFORMED)
def test_malformed_request_gets_the_json_error_shape_under_h11(
    h11_server, request_bytes, h11_reason
):
    _assert_json_400(_exchange(h11_server, request_bytes), h11_reason)
    status, headers, _ = _exchange(h11_server, _raw_request(b"application/json"))
    assert (status, headers["content-type"]) == (200, "application/json")


@pytest.mark.parametrize("accept", [b"application/json\x00", b"application/json;verbose\x1b"])
def test_control_character_that_reaches_the_app_is_a_json_400(accept):
    # What a laxer server (or a test transport) could hand the app: refused, not ignored
    app = create_app(ServeConfig(model="fake"), InProcessPredictor(FakeRunner()))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post(
                "/invocations",
                content=PNG,
                headers={"Content-Type": b"application/x-image", "Accept": accept},
            )

    response = asyncio.run(call())
    assert_error(response, 400, "the Accept header holds a control character")
    assert response.headers["x-boxtune-error-reason"] == "bad_accept_parameter"


# -- 4. a model that fails to load ------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact_with_a_bad_onnx(tmp_path_factory) -> Path:
    """A valid artifact whose model.onnx is garbage that its manifest's hash vouches for, so
    loading passes the checks and fails in onnxruntime (as in tests/test_os_errors.py)."""
    from boxtune.artifacts import MANIFEST_FILE, write_artifact
    from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
    from boxtune.engines import get_engine
    from boxtune.labels import LabelMap

    detector = get_engine("torch").create(
        get_spec(DEFAULT_MODEL_ID), LabelMap((1, 2), ("cat", "dog")), init="random"
    )
    target = write_artifact(
        detector, tmp_path_factory.mktemp("bad-onnx") / "model", model_id=DEFAULT_MODEL_ID
    )
    garbage = b"not a protobuf \xff\x00" * 64
    (target / "model.onnx").write_bytes(garbage)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    manifest["files"]["model.onnx"] = {
        "sha256": hashlib.sha256(garbage).hexdigest(),
        "size": len(garbage),
    }
    (target / MANIFEST_FILE).write_text(json.dumps(manifest))
    return target


def _run_until_exit(server: ServerProcess, timeout: float) -> tuple[int, float, set[int], str]:
    """Start ``server`` and poll /ping until it exits: exit code, seconds, statuses, stderr."""
    stderr_path = server.log_path.with_suffix(".stderr")
    started = time.monotonic()
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            server.command, env=server.env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        statuses: set[int] = set()
        try:
            while process.poll() is None and time.monotonic() - started < timeout:
                with contextlib.suppress(httpx.TransportError):  # not listening yet
                    statuses.add(httpx.get(f"{server.url}/ping", timeout=2).status_code)
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    return process.returncode, time.monotonic() - started, statuses, stderr_path.read_text()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_model_that_fails_to_load_ends_the_server(artifact_with_a_bad_onnx, tmp_path, workers):
    server = ServerProcess(
        str(artifact_with_a_bad_onnx), "--workers", workers, log_path=tmp_path / "log"
    )
    returncode, seconds, statuses, stderr = _run_until_exit(server, timeout=120)
    assert returncode == 1, stderr
    assert seconds < 120
    assert 200 not in statuses  # never ready, at most 503 "failed to load" before exiting
    onnx_path = artifact_with_a_bad_onnx / "model.onnx"
    assert f"error: {onnx_path}: onnxruntime cannot load the ONNX model: INVALID_PROTOBUF" in stderr
    assert "hint: " in stderr.split("error: ", 1)[1]
    assert "Traceback" not in stderr


def test_an_unexpected_load_exception_is_reported_as_a_model_error(monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(InProcessPredictor, "load", explode)
    failures: list[Exception] = []
    app = create_app(ServeConfig(model="some/model"), on_load_failure=failures.append)
    with _serving(app) as port:  # the lifespan starts the load in the background
        deadline = time.monotonic() + 10
        while not failures and time.monotonic() < deadline:
            time.sleep(0.02)
        ping = httpx.get(f"http://127.0.0.1:{port}/ping", timeout=10)
    assert ping.status_code == 503 and "disk on fire" in ping.json()["error"]
    [failure] = failures
    assert isinstance(failure, ModelError)
    assert failure.message == "the model failed to load: RuntimeError: disk on fire"
    assert failure.where == "some/model"


@pytest.mark.parametrize("supervisor_stops_by_itself", [False, True])
def test_the_parent_stops_a_supervisor_that_keeps_a_failed_worker(
    tmp_path, monkeypatch, supervisor_stops_by_itself
):
    # The fallback for uvicorn versions whose supervisor restarts a worker that failed its
    # startup: SIGTERM (which every supervisor handles by stopping its workers), only when
    # uvicorn has not stopped by itself within the grace time.
    monkeypatch.setattr(serve_server, "SUPERVISOR_GRACE_S", 0.5)
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        report = tmp_path / "load-failure.json"
        done = threading.Event()
        watcher = threading.Thread(target=serve_server._stop_when_reported, args=(report, done))
        watcher.start()
        time.sleep(0.3)
        report.write_text("{}")
        if supervisor_stops_by_itself:
            time.sleep(0.3)
            done.set()
        watcher.join(10)
        time.sleep(0.1)  # the handler runs in the main thread
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not watcher.is_alive()
    assert received == ([] if supervisor_stops_by_itself else [signal.SIGTERM])

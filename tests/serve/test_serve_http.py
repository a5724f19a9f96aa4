"""A real ``boxtune serve`` process (fake runner) answering real HTTP requests."""

from __future__ import annotations

import io
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_fakes import FakeRunner, encode, scene

from boxtune.serve.predictor import InProcessPredictor

IN_PROCESS = InProcessPredictor(FakeRunner())


def expected(body: bytes, accept: str | None = None) -> dict:
    """The in-process predictor's answer, through a JSON round trip like HTTP's."""
    answer, _ = IN_PROCESS.predict_bytes(body, accept)
    return json.loads(json.dumps(answer))


def post(
    server,
    body: bytes,
    content_type: str | None = "application/x-image",
    accept: str | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    sender = client or httpx
    return sender.post(f"{server.url}/invocations", content=body, headers=headers, timeout=30)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "hint"}
    assert body["error"] and body["hint"]
    assert "Traceback" not in response.text
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    return body


PNG = encode(scene(320, 240, {0: (20, 30, 120, 90), 2: (200, 100, 300, 220)}, seed=1))


def assert_still_serving(server) -> None:
    """After a limit was hit: /ping answers 200 and a normal request its normal answer."""
    assert httpx.get(f"{server.url}/ping", timeout=5).status_code == 200
    response = post(server, PNG)
    assert response.status_code == 200, response.text
    assert response.json() == expected(PNG)


JPEG = encode(scene(200, 150, {1: (50, 40, 150, 110)}, seed=2), "JPEG", quality=92)


def test_health_routes(fake_server):
    ping = httpx.get(f"{fake_server.url}/ping")
    assert ping.status_code == 200 and ping.json()["status"] == "ready"
    assert httpx.get(f"{fake_server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{fake_server.url}/v2/health/ready").json() == {"ready": True}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-image", PNG),
        ("application/x-image", JPEG),
        ("image/jpeg", JPEG),
        ("image/png", PNG),
        ("image/png", JPEG),  # the body's own signature decides how it decodes
        ("application/x-image; charset=binary", PNG),
        ("IMAGE/PNG", PNG),
        ("image/webp", encode(scene(64, 64, {2: (10, 10, 50, 50)}), "WEBP", lossless=True)),
    ],
)
def test_content_types(fake_server, content_type, body):
    response = post(fake_server, body, content_type)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected(body)


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "application/json",
        "application/json;verbose",
        "application/json; verbose",
        "application/json;n_predictions=1",
        "application/json;verbose;n_predictions=2",
        "application/json;n_predictions=2;verbose",
        "text/html, application/json;verbose",
    ],
)
def test_accept_variants(fake_server, accept):
    response = post(fake_server, PNG, accept=accept)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == expected(PNG, accept)
    verbose = accept is not None and "verbose" in accept
    assert ("labels" in answer) == verbose and ("model_output" in answer) == verbose
    if accept and "n_predictions=" in accept:
        limit = int(accept.split("n_predictions=")[1].split(";")[0])
        assert len(answer["normalized_boxes"]) == len(answer["scores"]) == limit
    scores = answer["scores"]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= v <= 1.0 for box in answer["normalized_boxes"] for v in box)


def test_unsupported_content_type_415(fake_server):
    assert_error(post(fake_server, PNG, "text/plain"), 415, "text/plain")
    assert_error(post(fake_server, PNG, "application/json"), 415)
    assert_error(post(fake_server, PNG, None), 415, "no Content-Type")


def test_empty_body_400(fake_server):
    assert_error(post(fake_server, b""), 400, "empty body")


def test_not_an_image_400(fake_server):
    body = assert_error(
        post(fake_server, b"<html>hello</html>"), 400, "not an image", "3c 68 74 6d 6c"
    )
    assert "JPEG" in body["hint"]


def test_truncated_png_400(fake_server):
    assert_error(post(fake_server, PNG[: len(PNG) // 2]), 400, "truncated PNG")


def test_body_too_large_413(fake_server):
    big = PNG + b"\x00" * 2_100_000  # the server was started with --max-body-bytes 2000000
    assert_error(post(fake_server, big), 413, "2,000,000 bytes")


def test_body_too_large_without_content_length_413(fake_server):
    def chunks():
        for _ in range(30):
            yield b"\x00" * 100_000

    response = httpx.post(
        f"{fake_server.url}/invocations",
        content=chunks(),
        headers={"Content-Type": "application/x-image"},
        timeout=30,
    )
    assert_error(response, 413, "limit")


def test_decompression_bomb_413(fake_server):
    buffer = io.BytesIO()
    Image.new("L", (5000, 5000)).save(buffer, "PNG")  # 25 MP > --max-image-pixels 4000000
    assert_error(post(fake_server, buffer.getvalue()), 413, "5000x5000", "4,000,000")


def test_unsupported_accept_406(fake_server):
    body = assert_error(post(fake_server, PNG, accept="text/html"), 406, "text/html")
    assert "application/json;verbose" in body["hint"]


def test_bad_n_predictions_400(fake_server):
    assert_error(
        post(fake_server, PNG, accept="application/json;n_predictions=lots"), 400, "n_predictions"
    )


def test_unknown_route_and_method_are_json(fake_server):
    assert_error(httpx.get(f"{fake_server.url}/nope"), 404, "/nope")
    assert_error(httpx.get(f"{fake_server.url}/invocations"), 405, "GET")


def test_metrics_prometheus_text(fake_server):
    post(fake_server, PNG)
    post(fake_server, b"", "application/x-image")
    text = httpx.get(f"{fake_server.url}/metrics").text
    assert 'boxtune_requests_total{method="POST",route="/invocations",status="200"}' in text
    assert 'boxtune_request_errors_total{reason="empty_body",route="/invocations"}' in text
    assert 'boxtune_request_duration_seconds_bucket{le="0.005",route="/invocations"}' in text
    assert "boxtune_batch_size_count" in text


def test_concurrent_clients_get_every_answer_right(fake_server):
    images = [
        encode(
            scene(96 + 8 * i, 80 + 4 * i, {i % 3: (5, 5, 40 + i, 40)}, seed=i),
            "PNG" if i % 2 else "JPEG",
        )
        for i in range(25)
    ]
    accepts = [None, "application/json;verbose", "application/json;n_predictions=2"]
    jobs = [(images[i % 25], accepts[i % 3]) for i in range(240)]
    wanted = [expected(body, accept) for body, accept in jobs]
    local = threading.local()

    def call(job):
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60)
        body, accept = job
        response = post(fake_server, body, accept=accept, client=local.client)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(call, jobs))
    assert [status for status, _ in results] == [200] * len(jobs)
    mismatches = [
        i for i, ((_, got), want) in enumerate(zip(results, wanted, strict=True)) if got != want
    ]
    assert mismatches == []


def _mutations(rng: random.Random, seeds: list[bytes]):
    """Random bodies and valid images with flipped bits, cut tails, spliced junk."""
    yield b""
    yield b"\x00"
    yield bytes(rng.getrandbits(8) for _ in range(64))
    while True:
        base = bytearray(rng.choice(seeds))
        kind = rng.randrange(5)
        if kind == 0:
            for _ in range(rng.randint(1, 20)):
                base[rng.randrange(len(base))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            base = base[: rng.randrange(1, len(base))]
        elif kind == 2:
            at = rng.randrange(len(base))
            base[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        elif kind == 3:
            at = rng.randrange(8, 64)  # header fields: sizes, chunk lengths
            base[at : at + 4] = bytes(rng.getrandbits(8) for _ in range(4))
        else:
            base = bytearray(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))))
        yield bytes(base)


def test_fuzzed_bodies_never_break_the_server(fake_server):
    rng = random.Random(1234)
    seeds = [
        encode(scene(48, 40, {0: (4, 4, 20, 20)}, seed=s), fmt)
        for s, fmt in enumerate(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
    ]
    deadline = time.monotonic() + 25
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=30) as client:
        for count, body in enumerate(_mutations(rng, seeds)):
            if count >= 300 or time.monotonic() > deadline:
                break
            ctype = rng.choice(["application/x-image", "image/png", "image/jpeg"])
            response = post(fake_server, body, ctype, client=client)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (200, 400, 413), response.text
            answer = response.json()
            if response.status_code != 200:
                assert set(answer) == {"error", "hint"}
            else:
                assert all(np.isfinite(answer["scores"]))
    assert sum(statuses.values()) >= 100
    assert statuses.get(400, 0) > 0
    assert httpx.get(f"{fake_server.url}/ping").status_code == 200
    assert post(fake_server, PNG).json() == expected(PNG)

"""Memory bounded whatever clients send: the in-flight pixel budget, decoding at a working size
(JPEGs at a reduced scale by the decoder itself) with boxes still in the stored image's pixels,
and 16 concurrent 7000 x 7000 PNGs of a few hundred KB against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_fakes import COLOR_SCORES, FAKE_MODEL, FakeRunner, encode, fake_detections, scene
from serve_process import ServerProcess
from test_serve_hardening import _serving
from test_serve_http import PNG, assert_error, expected

from boxtune.detections import Detections
from boxtune.serve.app import create_app
from boxtune.serve.codec import (
    MIN_WORKING_SIDE,
    DecodedImage,
    decode_image,
    probe_image,
)
from boxtune.serve.config import ServeConfig
from boxtune.serve.pixel_budget import PixelBudget, PixelBudgetTooSmallError
from boxtune.serve.predictor import InProcessPredictor

SIDE = MIN_WORKING_SIDE  # the fake runner's input is 64 px: the working size is the floor
OBJECTS = {0: (400, 300, 1900, 1400), 1: (2500, 500, 3800, 2900), 2: (100, 2000, 1200, 3000)}
BIG_SCENE = scene(4096, 3072, OBJECTS, seed=3)
BIG_JPEG = encode(BIG_SCENE, "JPEG", quality=92)
BIG_PNG = encode(BIG_SCENE)


def _color_boxes(detections: Detections) -> dict[int, np.ndarray]:
    """The boxes the fake runner finds from colours (not its pixel-hash ones), by class."""
    return {
        int(c): b
        for b, c, s in zip(detections.boxes, detections.classes, detections.scores, strict=True)
        if float(s) in {np.float32(x) for x in COLOR_SCORES}
    }


# -- the budget -------------------------------------------------------------------------------


def test_budget_grants_within_capacity_and_release_is_idempotent():
    async def scenario():
        budget = PixelBudget(100)
        first = await budget.acquire(60)
        second = await budget.acquire(40)
        assert (budget.in_use, budget.available) == (100, 0)
        second.shrink(10)  # scaled down: the rest goes back at once
        assert budget.in_use == 70
        for _ in range(2):
            first.release()
            second.release()
        assert budget.in_use == 0

    asyncio.run(scenario())


def test_budget_refuses_at_once_a_request_larger_than_itself():
    async def scenario():
        budget = PixelBudget(100)
        with pytest.raises(PixelBudgetTooSmallError, match="101 pixels exceed the budget of 100"):
            await budget.acquire(101)
        assert (budget.in_use, budget.waiting) == (0, 0)

    asyncio.run(scenario())


def test_budget_waiters_are_served_first_come_first_served():
    async def scenario():
        budget = PixelBudget(10)
        holder = await budget.acquire(8)
        large = asyncio.create_task(budget.acquire(5))
        small = asyncio.create_task(budget.acquire(1))  # would fit, but comes after `large`
        await asyncio.sleep(0)
        assert budget.waiting == 2 and not small.done()
        holder.release()
        granted = [await large, await small]
        assert budget.in_use == 6 and budget.waiting == 0
        for reservation in granted:
            reservation.release()
        assert budget.in_use == 0

    asyncio.run(scenario())


def test_a_waiter_that_times_out_takes_nothing_and_unblocks_the_next():
    async def scenario():
        budget = PixelBudget(10)
        holder = await budget.acquire(6)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await budget.acquire(10)  # at the head of the queue: blocks `next_one`
        assert (budget.in_use, budget.waiting) == (6, 0)
        next_one = await budget.acquire(4)  # the cancelled head no longer blocks it
        holder.release()
        next_one.release()
        assert budget.in_use == 0

    asyncio.run(scenario())


def test_a_waiter_cancelled_just_after_its_grant_gives_the_pixels_back():
    async def scenario():
        budget = PixelBudget(10)
        holder = await budget.acquire(10)
        waiter = asyncio.create_task(budget.acquire(5))
        await asyncio.sleep(0)
        holder.release()  # grants the waiter...
        waiter.cancel()  # ...which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (budget.in_use, budget.waiting) == (0, 0)

    asyncio.run(scenario())


def test_a_detached_reservation_is_released_by_its_new_owner_only():
    async def scenario():
        budget = PixelBudget(10)
        reservation = await budget.acquire(7)
        handed = reservation.detach()
        reservation.release()
        assert budget.in_use == 7
        handed.release()
        assert budget.in_use == 0

    asyncio.run(scenario())


# -- decoding at the working size -------------------------------------------------------------


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_boxes_map_back():
    header = probe_image(BIG_JPEG, max_side=SIDE)
    # DCT scaling by 1/2: still at least twice the working size on the short side
    assert (header.width, header.height) == (4096, 3072)
    assert (header.decoded_width, header.decoded_height) == (2048, 1536)
    reduced = decode_image(BIG_JPEG, max_side=SIDE)
    assert reduced.pixels.shape == (SIDE, SIDE, 3)
    assert (reduced.width, reduced.height, reduced.stored_size) == (4096, 3072, (4096, 3072))
    full = decode_image(BIG_JPEG)
    assert full.pixels.shape == (3072, 4096, 3) and full.stored_size is None

    mapped = _color_boxes(reduced.to_original(fake_detections(reduced.pixels)))
    reference = _color_boxes(fake_detections(full.pixels))
    assert set(mapped) == set(reference) == {0, 1, 2}
    for class_index, box in reference.items():
        # one working pixel is 4 x 3 stored pixels: the edges agree within about two
        np.testing.assert_allclose(mapped[class_index], box, atol=10)
        np.testing.assert_allclose(box, OBJECTS[class_index], atol=2)


def test_the_predictor_answers_a_reduced_jpeg_in_the_stored_images_pixels():
    runner = FakeRunner()
    answer, _ = InProcessPredictor(runner).predict_bytes(BIG_JPEG, "application/json;verbose")
    assert answer["model_output"]["image_size"] == {"width": 4096, "height": 3072}
    full = fake_detections(decode_image(BIG_JPEG).pixels)
    scale = np.array([4096, 3072, 4096, 3072])
    reference = {c: b / scale for c, b in _color_boxes(full).items()}
    shown = {
        c: np.array(b)
        for b, c, s in zip(
            answer["normalized_boxes"], answer["classes"], answer["scores"], strict=True
        )
        if s > 0.8
    }
    assert set(shown) == set(reference)
    for class_index, box in reference.items():
        np.testing.assert_allclose(shown[class_index], box, atol=0.003)


def test_a_large_png_is_scaled_down_after_decoding_its_stored_pixels():
    header = probe_image(BIG_PNG, max_side=SIDE)
    assert header.decoded_pixels == 4096 * 3072  # PNG has no reduced decoding
    reduced = decode_image(BIG_PNG, max_side=SIDE)
    assert reduced.pixels.shape == (SIDE, SIDE, 3)
    mapped = _color_boxes(reduced.to_original(fake_detections(reduced.pixels)))
    for class_index, box in OBJECTS.items():
        np.testing.assert_allclose(mapped[class_index], box, atol=10)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "I;16", "CMYK"])
def test_every_mode_of_a_large_image_is_scaled_down_to_rgb(mode):
    if mode == "I;16":
        image = Image.fromarray(np.full((1100, 2100), 40000, np.uint16))
    else:
        image = Image.new("RGB", (2100, 1100), (200, 30, 30)).convert(mode)
    buffer = io.BytesIO()
    options = {"transparency": 0} if mode == "P" else {}
    image.save(buffer, "JPEG" if mode == "CMYK" else "PNG", **options)
    decoded = decode_image(buffer.getvalue(), max_side=SIDE)
    assert decoded.pixels.shape == (SIDE, SIDE, 3) and decoded.pixels.dtype == np.uint8
    assert (decoded.width, decoded.height) == (2100, 1100)
    if mode == "RGBA":
        assert tuple(decoded.pixels[500, 500]) == (200, 30, 30)


@pytest.mark.parametrize(("width", "height"), [(SIDE, SIDE), (1500, 600)])
def test_an_image_within_the_working_pixels_is_decoded_as_it_is_stored(width, height):
    image = scene(width, height, {0: (10, 10, 100, 100)})
    assert probe_image(encode(image), max_side=SIDE).working_size(SIDE) == (width, height)
    decoded = decode_image(encode(image), max_side=SIDE)
    assert decoded.stored_size is None and np.array_equal(decoded.pixels, image)
    detections = fake_detections(image)
    assert decoded.to_original(detections) is detections


def test_mapping_back_scales_each_axis_and_keeps_the_raw_output():
    image = DecodedImage(np.zeros((100, 200, 3), np.uint8), "PNG", stored_size=(800, 300))
    raw = {"detection_boxes": [[0.1, 0.2, 0.3, 0.4]]}
    detections = Detections(
        np.array([[10, 20, 50, 60]], np.float32),
        np.array([1]),
        np.array([0.5], np.float32),
        model_output=raw,
    )
    mapped = image.to_original(detections)
    np.testing.assert_allclose(mapped.boxes, [[40, 60, 200, 180]])
    assert mapped.model_output is raw and mapped.boxes.dtype == np.float32


# -- the budget in the app --------------------------------------------------------------------


@contextlib.contextmanager
def _app(predictor: InProcessPredictor, **settings) -> Iterator[tuple[str, PixelBudget]]:
    app = create_app(ServeConfig(model="fake", **settings), predictor)
    with _serving(app) as port:
        yield f"http://127.0.0.1:{port}", app.app.state.pixel_budget


def _post(url: str, body: bytes, timeout: float = 30) -> httpx.Response:
    headers = {"Content-Type": "application/x-image"}
    return httpx.post(f"{url}/invocations", content=body, headers=headers, timeout=timeout)


def _wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_an_image_larger_than_the_budget_gets_413_but_a_jpeg_counts_at_its_reduced_size():
    predictor = InProcessPredictor(FakeRunner())
    with _app(predictor, max_inflight_pixels=4_000_000) as (url, budget):
        body = assert_error(_post(url, BIG_PNG), 413, "in-flight pixel budget", "12,582,912")
        assert "--max-inflight-pixels" in body["hint"]
        # 12.6 MP stored, decoded at 1/2: 3.1 MP fit the budget of 4 MP
        response = _post(url, BIG_JPEG)
        assert response.status_code == 200, response.text
        assert response.json() == expected(BIG_JPEG)
        # a corrupt large image fails its own request and gives its pixels back
        truncated = BIG_JPEG[: len(BIG_JPEG) // 3]
        assert_error(_post(url, truncated), 400, "truncated JPEG")
        assert budget.in_use == 0
        assert _post(url, PNG).json() == expected(PNG)
    assert budget.in_use == 0


class _SlowDecode(InProcessPredictor):
    """Sleeps while decoding images this many pixels wide (on the decoding thread)."""

    slow_width = 2000

    def decode(self, body, source="request body"):
        if self.probe(body).width == self.slow_width:
            time.sleep(2.5)
        return super().decode(body, source)


def test_a_request_that_cannot_get_pixels_by_its_deadline_gets_503_with_retry_after():
    slow = encode(np.zeros((2000, 2000, 3), np.uint8))  # 4 MP, decoded on a decoding thread
    waiting = encode(np.zeros((1000, 2500, 3), np.uint8))  # 2.5 MP: does not fit beside it
    settings = {"max_inflight_pixels": 5_000_000, "request_timeout_s": 1.0}
    with _app(_SlowDecode(FakeRunner()), **settings) as (url, budget):
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(_post, url, slow)
            _wait_for(lambda: budget.in_use > 0)
            response = _post(url, waiting)
            body = assert_error(response, 503, "5,000,000 decoded pixels", "2,500,000 pixels")
            assert response.headers["retry-after"] == "1"
            assert response.headers["x-boxtune-error-reason"] == "pixel_budget_exhausted"
            assert "--max-inflight-pixels" in body["hint"]
            # the slow one passed its deadline mid-decode: its pixels are held until the
            # decoding thread lets go of them, then given back
            assert first.result().status_code == 504
        _wait_for(lambda: budget.in_use == 0)
        assert _post(url, waiting).status_code == 200


# -- a real server under 16 concurrent 7000 x 7000 PNGs ---------------------------------------

FLOOD = 16
FLOOD_SIDE = 7000
# Before the budget this flood peaked at ~2.5 GB of RSS (8 full RGB decodes per batch); with
# the default budget (2 x 50 MP) it peaks at ~0.6 GB. The bound leaves room for allocators.
PEAK_RSS_BOUND = 1_200_000_000


def _process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                pids.extend(_process_tree(int(child)))
    return pids


def _peak_rss(pid: int) -> int:
    """The peak resident memory (VmHWM) of ``pid`` and its children, in bytes."""
    total = 0
    for member in _process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
    return total


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_concurrent_huge_pngs_keep_memory_bounded_and_the_server_serving(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (FLOOD_SIDE, FLOOD_SIDE), (220, 20, 20)).save(buffer, "PNG")
    huge = buffer.getvalue()
    assert len(huge) < 200_000  # 147 MB of RGB pixels
    with ServerProcess(FAKE_MODEL, log_path=tmp_path / "server.log") as server:
        server.wait_ready()
        assert server.process is not None
        before = _peak_rss(server.process.pid)
        started = threading.Event()

        def send(_) -> httpx.Response:
            started.set()
            return _post(server.url, huge, timeout=120)

        with ThreadPoolExecutor(FLOOD) as pool:
            responses = pool.map(send, range(FLOOD))
            started.wait()
            ping_started = time.perf_counter()
            ping = httpx.get(f"{server.url}/ping", timeout=10)
            ping_s = time.perf_counter() - ping_started
            responses = list(responses)
        peak = _peak_rss(server.process.pid)
        print(
            f"\n{FLOOD} concurrent {FLOOD_SIDE}x{FLOOD_SIDE} PNGs ({len(huge):,} bytes each): "
            f"peak RSS {peak / 1e6:.0f} MB (before them {before / 1e6:.0f} MB); "
            f"/ping during the flood answered in {ping_s * 1000:.0f} ms"
        )
        assert ping.status_code == 200
        assert [r.status_code for r in responses] == [200] * FLOOD, responses[0].text
        for response in responses:  # the red square fills the image: in stored pixels
            answer = response.json()
            assert answer["classes"][0] == 0
            np.testing.assert_allclose(answer["normalized_boxes"][0], [0, 0, 1, 1], atol=1e-3)
        assert peak < PEAK_RSS_BOUND, f"peak RSS {peak:,} bytes"
        assert httpx.get(f"{server.url}/ping", timeout=5).status_code == 200
        response = _post(server.url, PNG)
        assert response.status_code == 200 and response.json() == expected(PNG)
    assert "Traceback" not in server.log(), server.log()

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from boxtune.detections import Detections
from boxtune.serve.batching import DynamicBatcher, QueueFullError


def _tagged(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def _echo(images):
    """One box per image whose score encodes the image's value: checks result routing."""
    return [
        Detections(
            np.zeros((1, 4), np.float32),
            np.zeros(1, np.int64),
            np.array([img[0, 0, 0] / 255], np.float32),
        )
        for img in images
    ]


def test_concurrent_submissions_are_batched_and_routed_back():
    batches: list[int] = []
    threads: set[str] = set()

    def predict(images):
        threads.add(threading.current_thread().name)
        return _echo(images)

    async def main():
        batcher = DynamicBatcher(
            predict, max_batch_size=8, max_delay_s=0.05, on_batch=lambda n, s: batches.append(n)
        )
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(_tagged(v)) for v in range(20)))
        await batcher.stop()
        return results

    results = asyncio.run(main())
    assert [round(float(r.scores[0]) * 255) for r in results] == list(range(20))
    assert sum(batches) == 20
    assert max(batches) == 8 and len(batches) <= 4
    assert all(name.startswith("boxtune-infer") for name in threads)


def test_batch_size_one_disables_batching():
    batches: list[int] = []

    async def main():
        batcher = DynamicBatcher(
            _echo, max_batch_size=1, max_delay_s=0.05, on_batch=lambda n, s: batches.append(n)
        )
        batcher.start()
        await asyncio.gather(*(batcher.submit(_tagged(v)) for v in range(5)))
        await batcher.stop()

    asyncio.run(main())
    assert batches == [1] * 5


def test_runner_failure_reaches_every_caller_and_batcher_survives():
    calls = {"n": 0}

    def flaky(images):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return _echo(images)

    async def main():
        batcher = DynamicBatcher(flaky, max_batch_size=4, max_delay_s=0.02)
        batcher.start()
        first = await asyncio.gather(
            *(batcher.submit(_tagged(1)) for _ in range(3)), return_exceptions=True
        )
        second = await batcher.submit(_tagged(2))
        await batcher.stop()
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert len(second) == 1


def test_a_lone_request_waits_at_most_the_delay():
    async def main():
        batcher = DynamicBatcher(_echo, max_batch_size=64, max_delay_s=0.01)
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit(_tagged(1))
        elapsed = loop.time() - started
        await batcher.stop()
        return elapsed

    assert asyncio.run(main()) < 0.5


def test_invalid_batch_size():
    with pytest.raises(ValueError):
        DynamicBatcher(_echo, max_batch_size=0)


def test_full_queue_sheds_load():
    release = threading.Event()

    def slow(images):
        release.wait(5)
        return _echo(images)

    async def main():
        batcher = DynamicBatcher(slow, max_batch_size=1, max_delay_s=0, max_queue=2)
        batcher.start()
        running = [asyncio.ensure_future(batcher.submit(_tagged(0)))]
        await asyncio.sleep(0.05)  # the first one is in the model
        running += [asyncio.ensure_future(batcher.submit(_tagged(v))) for v in (1, 2)]
        await asyncio.sleep(0.05)  # two waiting
        with pytest.raises(QueueFullError, match="2 requests are already waiting"):
            await batcher.submit(_tagged(9))
        release.set()
        results = await asyncio.gather(*running)
        await batcher.stop()
        return results

    assert len(asyncio.run(main())) == 3


def test_waits_only_for_requests_that_are_arriving():
    batches: list[int] = []
    batcher = DynamicBatcher(
        _echo, max_batch_size=8, max_delay_s=0.5, on_batch=lambda n, s: batches.append(n)
    )

    async def request(value: int, decode_s: float) -> Detections:
        with batcher.arriving():
            await asyncio.sleep(decode_s)  # reading + decoding the body
        return await batcher.submit(_tagged(value))

    async def main() -> float:
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await request(1, 0.0)  # alone: must not wait for the 0.5 s delay
        lone = loop.time() - started
        await asyncio.gather(request(2, 0.0), request(3, 0.05))
        await batcher.stop()
        return lone

    assert asyncio.run(main()) < 0.25
    assert batches == [1, 2]  # the request still decoding joined the other one's batch


def test_an_exception_result_fails_only_its_own_caller():
    def run(items):
        return [ValueError(f"bad {v}") if v % 2 else v * 10 for v in items]

    async def main():
        batcher = DynamicBatcher(run, max_batch_size=8, max_delay_s=0.05)
        batcher.start()
        results = await asyncio.gather(
            *(batcher.submit(v) for v in range(4)), return_exceptions=True
        )
        await batcher.stop()
        return results

    results = asyncio.run(main())
    assert results[0] == 0 and results[2] == 20
    assert isinstance(results[1], ValueError) and str(results[3]) == "bad 3"

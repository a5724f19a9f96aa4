"""Dynamic batching: concurrent requests share one model call.

One collector task per process takes the first waiting item and, while other requests are
still arriving (their bodies being read, see :meth:`DynamicBatcher.arriving`), waits at most
``max_delay_s`` for them (up to ``max_batch_size``). A lone request therefore never waits. The
batch runs on a single inference thread, so the event loop keeps accepting requests; items that
come in while a batch runs form the next batch at once, so under load batches fill without any
added delay.

The batch function maps a list of items to a list of results; a result that is an exception is
raised to that item's caller only (e.g. one undecodable image in a batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

BatchFn = Callable[[list[Any]], Sequence[Any]]
BatchObserver = Callable[[int, float], None]  # (batch size, seconds)


class QueueFullError(RuntimeError):
    """More items are waiting than ``max_queue``: the caller should shed load (HTTP 503)."""


@dataclass
class _Pending:
    item: Any
    future: asyncio.Future


class DynamicBatcher:
    def __init__(
        self,
        run_batch: BatchFn,
        *,
        max_batch_size: int = 8,
        max_delay_s: float = 0.002,
        max_queue: int | None = None,
        on_batch: BatchObserver | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._run_batch_fn = run_batch
        self.max_batch_size = max_batch_size
        self.max_delay_s = max(0.0, max_delay_s)
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._arriving = 0
        self._task: asyncio.Task | None = None
        # One thread: one batch at a time (the runner parallelises inside)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="boxtune-infer")

    def start(self) -> None:
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Finish queued work, then stop the collector and the inference thread."""
        if self._task is not None and self._queue is not None:
            while not self._queue.empty():
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Wrap a request's work before :meth:`submit` (reading, decoding): the collector waits
        for arriving requests to join the current batch instead of starting without them."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def submit(self, item: Any) -> Any:
        """The batch function's result for ``item`` (raised if it is an exception)."""
        if self._queue is None:
            raise RuntimeError("DynamicBatcher.start() was not called")
        if self.max_queue is not None and self._queue.qsize() >= self.max_queue:
            raise QueueFullError(f"{self._queue.qsize()} requests are already waiting")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_delay_s
            while len(batch) < self.max_batch_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                if self._arriving == 0:
                    break  # nobody else is on the way: waiting would only add latency
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            live = [p for p in batch if not p.future.done()]  # callers that went away
            if live:
                await self._run_batch(loop, live)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(
                self._executor, self._run_batch_fn, [p.item for p in batch]
            )
            if len(results) != len(batch):
                raise RuntimeError(f"runner returned {len(results)} results for {len(batch)}")
        except Exception as exc:  # reported to each caller; the collector keeps running
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - started)
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)

"""A process-wide budget of decoded pixels, shared by the requests in flight.

The bytes of a request say little about its memory: a PNG of a few kilobytes can decode to
7000 x 7000 pixels (147 MB as RGB, more inside Pillow while it converts). Each request reserves
the pixels its decode will hold (read from the header, before any pixel is decoded) and keeps
them until it is answered; the total never exceeds the capacity, so the memory of decoding is
bounded whatever clients send. A reservation can shrink once the pixels are scaled down to the
working size (:meth:`Reservation.shrink`), so that a large image blocks others only while it
decodes.

Waiters are served first come, first served: a large request is not starved by a stream of
small ones. Everything runs on the event loop (no locks); a waiter that is cancelled (its
deadline passed, its client went away) leaves the queue and gives back what it was granted.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass


class PixelBudgetTooSmallError(ValueError):
    """A single request needs more pixels than the whole budget: it can never be granted."""


@dataclass(eq=False)  # found in the queue by identity
class _Waiter:
    pixels: int
    future: asyncio.Future


class PixelBudget:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"the pixel budget must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.in_use = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()

    @property
    def available(self) -> int:
        return self.capacity - self.in_use

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, pixels: int) -> Reservation:
        """A reservation of ``pixels``, waiting (first come, first served) until they are free.

        Raises PixelBudgetTooSmallError at once when ``pixels`` exceeds the capacity. Bound the
        wait with ``asyncio.timeout``: a cancelled waiter takes nothing.
        """
        pixels = max(0, int(pixels))
        if pixels > self.capacity:
            raise PixelBudgetTooSmallError(
                f"{pixels:,} pixels exceed the budget of {self.capacity:,} pixels"
            )
        if not self._waiters and pixels <= self.available:
            self.in_use += pixels
            return Reservation(self, pixels)
        waiter = _Waiter(pixels, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await waiter.future
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self._give_back(pixels)  # granted just as it was cancelled
            else:
                if waiter in self._waiters:  # _wake may have dropped it already
                    self._waiters.remove(waiter)
                self._wake()  # it may have been the head that blocked the others
            raise
        return Reservation(self, pixels)

    def _give_back(self, pixels: int) -> None:
        self.in_use -= pixels
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._waiters[0].pixels <= self.available:
            waiter = self._waiters.popleft()
            if waiter.future.done():  # cancelled, its task not resumed yet
                continue
            self.in_use += waiter.pixels
            waiter.future.set_result(None)


class Reservation:
    """Pixels held in a :class:`PixelBudget`; :meth:`release` (idempotent) gives them back."""

    def __init__(self, budget: PixelBudget, pixels: int):
        self._budget = budget
        self.pixels = pixels

    def shrink(self, pixels: int) -> None:
        """Keep only ``pixels`` (e.g. once the image is scaled down); the rest goes back."""
        pixels = max(0, int(pixels))
        if pixels < self.pixels:
            freed, self.pixels = self.pixels - pixels, pixels
            self._budget._give_back(freed)

    def detach(self) -> Reservation:
        """A new reservation of these pixels, for another owner to release; this one is
        left empty (its release does nothing)."""
        pixels, self.pixels = self.pixels, 0
        return Reservation(self._budget, pixels)

    def release(self) -> None:
        if self.pixels:
            freed, self.pixels = self.pixels, 0
            self._budget._give_back(freed)

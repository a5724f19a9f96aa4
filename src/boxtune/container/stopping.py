"""The platform stops a job with SIGTERM (and SIGKILL a while later): boxtune takes it as
Ctrl-C, so the trainer saves its checkpoint and the job unwinds cleanly."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class StopOnSigterm:
    """While active, the first SIGTERM raises KeyboardInterrupt in the main thread (later
    ones are only recorded: the checkpoint being saved must not be cut short). Inside
    :meth:`deferred` a SIGTERM is recorded and does not interrupt."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._deferred = False
        self._previous: object = None

    def __enter__(self) -> StopOnSigterm:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = self.received is None
        self.received = signum
        if first and not self._deferred:
            raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A step too short to interrupt whose end is the job's clean end (moving the model
        into place)."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False

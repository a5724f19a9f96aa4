"""Job logs: why a job failed (the first lines worth reading), and following a log as it grows."""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

SUPERVISOR_PREFIX = "[boxtune-job]"
MAX_REASON_LINES = 12
_TRACEBACK = "Traceback (most recent call last):"
# Progress bars rewrite one line with carriage returns; only the last state is worth keeping.
_CARRIAGE = re.compile(r"^.*\r(?!\n)", re.MULTILINE)


def read_tail(path: Path, max_bytes: int = 256_000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return _CARRIAGE.sub("", data.decode("utf-8", errors="replace"))


def failure_reason(log_text: str) -> str | None:
    """The lines that explain a failure: boxtune's ``error:`` message with its hint, else the
    exception of the last traceback, else the last lines of output."""
    lines = [
        line.rstrip()
        for line in log_text.splitlines()
        if line.strip() and not line.startswith(SUPERVISOR_PREFIX)
    ]
    if not lines:
        return None
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("error: "):
            message = lines[index][len("error: ") :]
            return "\n".join([message, *lines[index + 1 :]][:MAX_REASON_LINES])
    starts = [i for i, line in enumerate(lines) if line.startswith(_TRACEBACK)]
    if starts:
        block = lines[starts[-1] :]
        frames = [line.strip() for line in block if line.lstrip().startswith('File "')]
        exception = [line for line in block[1:] if not line.startswith((" ", "\t"))]
        summary = exception[-3:] or block[-1:]
        where = [f"at {frames[-1]}"] if frames else []
        return "\n".join([*summary, *where][:MAX_REASON_LINES])
    return "\n".join(lines[-MAX_REASON_LINES:])


def follow(
    path: Path,
    finished: Callable[[], bool],
    out: TextIO,
    poll_s: float = 0.5,
    from_start: bool = True,
) -> None:
    """Copy ``path`` to ``out`` as it grows until ``finished()`` and nothing more is written."""
    position = 0
    if not from_start and path.exists():
        position = path.stat().st_size
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks split characters
    while True:
        done = finished()  # checked before reading, so the last lines are never missed
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            if chunk:
                out.write(decoder.decode(chunk))
                out.flush()
        if done:
            return
        time.sleep(poll_s)

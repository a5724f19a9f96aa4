"""Real ``boxtune train`` processes for the tests that kill one mid-run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable


def train_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "boxtune.cli", "train", *args]


def start_and_kill_when(
    args: list[str], env: dict, ready: Callable[[], bool], *, timeout_s: float, what: str
) -> subprocess.Popen:
    """Start ``boxtune train args`` and SIGKILL it as soon as ``ready()`` holds (a checkpoint
    or a temp dir appeared); fails if it exits first or ``what`` takes over ``timeout_s``."""
    process = subprocess.Popen(
        train_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"no {what} within {timeout_s:g} s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    return process

"""A real ``boxtune ui`` process on a free 127.0.0.1 port, over its own BOXTUNE_HOME."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_OUTPUT = REPO / "test-output"


@contextmanager
def boxtune_home(home: Path) -> Iterator[None]:
    """Library calls in this process against ``home``'s registry."""
    old = os.environ.get("BOXTUNE_HOME")
    os.environ["BOXTUNE_HOME"] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BOXTUNE_HOME", None)
        else:
            os.environ["BOXTUNE_HOME"] = old


def stop_everything(home: Path) -> None:
    """Jobs and endpoints a test left running (a failed assertion) must not outlive it."""
    from boxtune.jobs import list_endpoints, list_jobs, stop_endpoint, stop_job

    with boxtune_home(home):
        for job in list_jobs():
            if job.is_active:
                stop_job(job.name, grace_s=5)
        for endpoint in list_endpoints():
            if endpoint.is_active:
                stop_endpoint(endpoint.name, grace_s=5)


@dataclass
class Console:
    url: str
    home: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    home = tmp_path / "home"
    home.mkdir()
    port = _free_port()
    log_path = tmp_path / "console.log"
    env = {**os.environ, "BOXTUNE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "boxtune.cli", "ui", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    running = Console(f"http://127.0.0.1:{port}", home, process, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"boxtune ui exited {process.returncode}:\n{running.log()}")
            try:
                if httpx.get(f"{running.url}/api/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"boxtune ui did not answer in 60 s:\n{running.log()}")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stop_everything(home)


@pytest.fixture
def test_output() -> Path:
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT

"""The container's programs as real processes: ``python -m boxtune.container.entrypoint
train|serve --root ROOT``, as the image's ENTRYPOINT runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def entrypoint(*args: str) -> list[str]:
    return [sys.executable, "-m", "boxtune.container.entrypoint", *args]


def container_env(**extra: str) -> dict[str, str]:
    """This process's environment (BOXTUNE_HOME set by the fixture) plus ``extra``."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def run_training(root: Path, *, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        entrypoint("train", "--root", str(root)),
        capture_output=True,
        text=True,
        env=container_env(**env),
        timeout=timeout,
    )


def start_training(root: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        entrypoint("train", "--root", str(root)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=container_env(**env),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServingContainer:
    """``serve --root ROOT`` on a free port given as SAGEMAKER_BIND_TO_PORT."""

    def __init__(self, root: Path, *args: str, log_path: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = entrypoint("serve", "--root", str(root), *args)
        self.env = container_env(
            SAGEMAKER_BIND_TO_PORT=str(self.port), BOXTUNE_HOST="127.0.0.1", **env
        )
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServingContainer:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __exit__(self, *exc) -> None:
        self.stop()

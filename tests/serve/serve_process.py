"""Start ``boxtune serve`` as a real process on a free 127.0.0.1 port and talk HTTP to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SERVE_TESTS_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, model: str, *args: str, log_path: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = [
            sys.executable,
            "-m",
            "boxtune.cli",
            "serve",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            *args,
        ]
        python_path = os.pathsep.join(
            p for p in (str(SERVE_TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p
        )
        self.env = {**os.environ, "PYTHONPATH": python_path, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        return self

    def wait_listening(self, timeout: float = 60.0) -> None:
        self._wait(lambda r: r.status_code in (200, 503), timeout)

    def wait_ready(self, timeout: float = 120.0) -> None:
        self._wait(lambda r: r.status_code == 200, timeout)

    def _wait(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if done(httpx.get(f"{self.url}/ping", timeout=2.0)):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.terminate()

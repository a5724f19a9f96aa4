"""A real S3-protocol server for tests: moto's standalone server in a subprocess on 127.0.0.1.

Reusable from any test area::

    from tests.s3_server import S3Server, s3_environment

    with S3Server() as server, s3_environment(server):
        server.create_bucket("my-bucket")
        ...  # boxtune.storage (and any subprocess started now) talks to the server

or, in a conftest, ``s3_server`` / ``s3_env`` fixtures built from these two (see
``tests/sdk/conftest.py``). The environment sets ``BOXTUNE_S3_ENDPOINT_URL`` plus dummy AWS
credentials and region, so child processes (training jobs, ``boxtune serve``) reach the same
server. Nothing here talks to the internet.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ACCESS_KEY = "boxtune-test"
SECRET_KEY = "boxtune-test-secret"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """moto's S3-compatible server, started as a separate process (a real HTTP endpoint)."""

    def __init__(self, log_path: Path | None = None):
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> S3Server:
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "MOTO_ALLOW_NONEXISTENT_REGION": "1",
            },
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode}")
            try:
                # moto's dashboard-free health route; any HTTP answer means it is serving.
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2).close()
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint_url} in {timeout} s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """Variables that point boxtune (and its child processes) at this server."""
        return {
            "BOXTUNE_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self):
        """A boto3 S3 client bound to this server (for arranging and checking test state)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def reset(self) -> None:
        """Forget every bucket (moto's reset API), so tests sharing one server stay isolated."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


@contextlib.contextmanager
def s3_environment(server: S3Server) -> Iterator[None]:
    """Set the server's variables in ``os.environ`` for the duration, then restore them."""
    names = [*server.environment(), "AWS_ENDPOINT_URL", "AWS_PROFILE"]
    saved = {name: os.environ.get(name) for name in names}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.update(server.environment())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# pytest fixtures: import them into a conftest or test module
# (``from tests.s3_server import s3_server, s3_env, s3_bucket``).
try:
    import pytest
except ImportError:  # the helper also works without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def s3_server(tmp_path_factory) -> Iterator[S3Server]:
        """One moto server per test session (per importing module)."""
        log = tmp_path_factory.mktemp("s3") / "moto.log"
        with S3Server(log_path=log) as server:
            yield server

    @pytest.fixture
    def s3_env(s3_server: S3Server) -> Iterator[S3Server]:
        """The server's variables set in os.environ (inherited by child processes)."""
        with s3_environment(s3_server):
            yield s3_server

    @pytest.fixture
    def s3_bucket(s3_env: S3Server) -> str:
        """A fresh, empty bucket on the server; the environment points at the server."""
        import uuid

        return s3_env.create_bucket(f"boxtune-test-{uuid.uuid4().hex[:8]}")

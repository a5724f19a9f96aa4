"""Fixtures of the managed-SDK compatibility tests: a real S3 server, an isolated BOXTUNE_HOME."""

from __future__ import annotations

import pytest
from tests.s3_server import s3_bucket, s3_env, s3_server

__all__ = ["s3_bucket", "s3_env", "s3_server"]


@pytest.fixture(autouse=True)
def boxtune_home(tmp_path, monkeypatch):
    home = tmp_path / "boxtune-home"
    monkeypatch.setenv("BOXTUNE_HOME", str(home))
    return home

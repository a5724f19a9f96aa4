from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_fakes import DEFAULT_MODEL_ID, FAKE_MODEL
from serve_process import ServerProcess


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory):
    """One server process with the fake runner, shared by a test module."""
    log_path = tmp_path_factory.mktemp("fake-server") / "server.log"
    server = ServerProcess(
        FAKE_MODEL,
        "--max-body-bytes",
        "2000000",
        "--max-image-pixels",
        "4000000",
        log_path=log_path,
    )
    with server:
        server.wait_ready()
        yield server
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="session")
def real_artifact(tmp_path_factory) -> Path:
    """An artifact of the default model with a new, untrained head (no training needed)."""
    try:
        from boxtune.artifacts import write_artifact
        from boxtune.catalog import get_spec
        from boxtune.engines import get_engine
    except ImportError as exc:  # the engine/artifact areas are not there yet
        pytest.skip(f"real model not available: {exc}")
    from boxtune.labels import LabelMap

    label_map = LabelMap((1, 2, 3), ("red thing", "green thing", "blue thing"))
    detector = get_engine("torch").create(
        get_spec(DEFAULT_MODEL_ID), label_map, init="pretrained", reinitialize_head=True
    )
    target = tmp_path_factory.mktemp("real-artifact") / "model"
    return write_artifact(
        detector, target, model_id=DEFAULT_MODEL_ID, hyperparameters={}, metrics={}, history=[]
    )


@pytest.fixture
def s3(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    try:
        from tests.s3_server import S3Server, s3_environment
    except ImportError:
        pytest.skip("tests/s3_server.py not available")
    with S3Server(log_path=tmp_path / "moto.log") as server, s3_environment(server):
        server.create_bucket("bucket")
        yield server

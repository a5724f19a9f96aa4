"""Serving an artifact where torch cannot be imported (the slim ``boxtune[serve]`` install):
a real ``boxtune serve`` process whose interpreter refuses torch, torchvision and TensorFlow
answers the notebook's request as the torch backend does."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import torch
from serve_fakes import DEFAULT_MODEL_ID, encode, scene
from serve_process import SERVE_TESTS_DIR, ServerProcess

from boxtune.artifacts import write_artifact
from boxtune.catalog import get_spec
from boxtune.engines import get_engine
from boxtune.labels import LabelMap
from boxtune.serve.predictor import InProcessPredictor

# Imported first by every Python started with this folder on PYTHONPATH: importing a blocked
# framework raises what a missing one raises, and the attempt is written down.
BLOCKER = """
import importlib.abc, os, sys

BLOCKED = ("torch", "torchvision", "tensorflow", "keras")
ATTEMPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attempts.log")


class BlockFrameworks(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(ATTEMPTS, "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, BlockFrameworks())
"""
NOTEBOOK_ACCEPT = "application/json;verbose;n_predictions=10"


@pytest.fixture(scope="module")
def confident_artifact(tmp_path_factory):
    """The default model with its class logits spread out, so that its scores cover (0, 1)
    like a trained model's: no near-ties whose order float noise between runtimes could flip."""
    label_map = LabelMap((1, 2, 3), ("red thing", "green thing", "blue thing"))
    torch.manual_seed(0)
    detector = get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), label_map)
    with torch.no_grad():
        detector.net.head.class_tower.predict_pw.weight.mul_(40.0)
        detector.net.head.class_tower.predict_pw.bias.add_(4.0)
    target = tmp_path_factory.mktemp("confident") / "model"
    return write_artifact(
        detector, target, model_id=DEFAULT_MODEL_ID, hyperparameters={}, metrics={}, history=[]
    )


@pytest.fixture(scope="module")
def blocker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-frameworks")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def pixel_boxes(answer: dict, width: int, height: int) -> np.ndarray:
    return np.asarray(answer["normalized_boxes"], np.float64) * [width, height, width, height]


def test_the_blocker_blocks(blocker):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import torch"],
        env={"PYTHONPATH": str(blocker)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "No module named 'torch'" in result.stderr


def test_torch_free_server_answers_like_the_torch_backend(confident_artifact, blocker, tmp_path):
    image = scene()
    body = encode(image, "JPEG")
    height, width = image.shape[:2]
    attempts = blocker / "attempts.log"
    attempts.unlink(missing_ok=True)
    server = ServerProcess(
        str(confident_artifact),
        "--workers",
        "1",
        log_path=tmp_path / "server.log",
        env={"PYTHONPATH": f"{blocker}:{SERVE_TESTS_DIR}"},
    )
    with server:
        server.wait_ready()
        response = httpx.post(
            f"{server.url}/invocations",
            content=body,
            headers={"Content-Type": "application/x-image", "Accept": NOTEBOOK_ACCEPT},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        served = json.loads(response.content)
        assert httpx.get(f"{server.url}/ping").status_code == 200
    assert "Traceback" not in server.log(), server.log()
    assert not attempts.exists(), f"the server tried to import {attempts.read_text()}"

    torch_answer, _ = InProcessPredictor.load(
        str(confident_artifact), backend="torch"
    ).predict_bytes(body, NOTEBOOK_ACCEPT)
    assert served["labels"] == torch_answer["labels"]
    assert len(served["classes"]) == len(torch_answer["classes"]) == 10
    assert served["classes"] == torch_answer["classes"]  # same detections in the same order
    # a real ranking: the scores are apart by far more than the two runtimes' float noise
    assert np.diff(torch_answer["scores"]).max() < -1e-5
    np.testing.assert_allclose(served["scores"], torch_answer["scores"], rtol=0, atol=1e-4)
    gap = np.abs(pixel_boxes(served, width, height) - pixel_boxes(torch_answer, width, height))
    assert gap.max() < 1e-3, f"boxes differ by {gap.max()} px"

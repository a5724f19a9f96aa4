"""The default model (untrained head) behind a real server: same answers as in-process."""

from __future__ import annotations

import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from serve_fakes import DEFAULT_MODEL_ID, encode, scene
from serve_process import ServerProcess

from boxtune.serve.batch import predict_folder
from boxtune.serve.predictor import InProcessPredictor

IMAGES = [
    encode(scene(320, 240, {0: (20, 30, 120, 90)}, seed=1)),
    encode(scene(640, 480, {1: (100, 100, 300, 260)}, seed=2), "JPEG", quality=90),
    encode(scene(200, 300, {2: (10, 10, 150, 120)}, seed=3)),
]


@pytest.fixture(scope="module")
def in_process(real_artifact):
    return InProcessPredictor.load(str(real_artifact))


@pytest.fixture(scope="module")
def real_server(real_artifact, tmp_path_factory):
    server = ServerProcess(
        str(real_artifact),
        "--max-batch-size",
        "4",
        "--max-batch-delay-ms",
        "5",
        log_path=tmp_path_factory.mktemp("real-server") / "server.log",
    )
    with server:
        server.wait_ready(timeout=180)
        yield server
    assert "Traceback" not in server.log(), server.log()


def same_answer(got: dict, want: dict, top: int = 40) -> None:
    """Equal up to float noise. An untrained head scores many boxes almost equally, so tiny
    differences (batched vs single calls) may swap neighbours: match each of the best ``top``
    boxes against the whole other answer instead of position by position."""
    assert set(got) == set(want)
    assert got.get("labels") == want.get("labels")
    want_boxes = np.asarray(want["normalized_boxes"])
    want_scores = np.asarray(want["scores"])
    assert len(got["scores"]) == len(want["scores"])
    for box, cls, score in list(
        zip(got["normalized_boxes"], got["classes"], got["scores"], strict=True)
    )[:top]:
        close = (
            (np.abs(want_boxes - np.asarray(box)).max(axis=1) < 1e-4)
            & (np.abs(want_scores - score) < 1e-5)
            & (np.asarray(want["classes"]) == cls)
        )
        assert close.any(), (box, cls, score)


def test_real_model_answers_like_the_in_process_predictor(real_server, in_process):
    for body in IMAGES:
        for accept in ("application/json", "application/json;verbose;n_predictions=10"):
            response = httpx.post(
                f"{real_server.url}/invocations",
                content=body,
                timeout=60,
                headers={"Content-Type": "application/x-image", "Accept": accept},
            )
            assert response.status_code == 200, response.text
            got = response.json()
            want = json.loads(json.dumps(in_process.predict_bytes(body, accept)[0]))
            same_answer(got, want)
            boxes = np.asarray(got["normalized_boxes"])
            assert boxes.shape[1] == 4 and boxes.min() >= 0 and boxes.max() <= 1
            assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
            assert set(got["classes"]) <= {0, 1, 2}
            assert got["scores"] == sorted(got["scores"], reverse=True)
            if "verbose" in accept:
                assert len(got["scores"]) == 10
                assert got["labels"] == ["red thing", "green thing", "blue thing"]


def test_real_model_concurrent_clients(real_server, in_process):
    jobs = [IMAGES[i % len(IMAGES)] for i in range(24)]
    wanted = {
        i: json.loads(json.dumps(in_process.predict_bytes(b)[0])) for i, b in enumerate(IMAGES)
    }
    local = threading.local()

    def call(body: bytes) -> httpx.Response:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=120)
        return local.client.post(
            f"{real_server.url}/invocations", content=body, headers={"Content-Type": "image/png"}
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(call, jobs))
    assert [r.status_code for r in responses] == [200] * len(jobs)
    for i, response in enumerate(responses):
        same_answer(response.json(), wanted[i % len(IMAGES)])
    metrics = httpx.get(f"{real_server.url}/metrics").text
    assert "boxtune_batch_size_count" in metrics


def test_tarball_and_directory_give_the_same_answers(
    real_artifact, in_process, tmp_path, monkeypatch
):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))  # where the tarball unpacks
    from_tarball = InProcessPredictor.load(str(real_artifact / "model.tar.gz"))
    assert from_tarball.labels == in_process.labels
    same_answer(from_tarball.predict_bytes(IMAGES[0])[0], in_process.predict_bytes(IMAGES[0])[0])


def test_batch_prediction_with_the_real_model(real_artifact, in_process, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, body in enumerate(IMAGES):
        (inputs / f"img{i}.png").write_bytes(body)
    summary = predict_folder(
        in_process,
        str(inputs),
        str(tmp_path / "out"),
        visualize=True,
        min_score=0.0,
        progress=False,
    )
    assert (summary.done, summary.failed) == (3, 0)
    for i, body in enumerate(IMAGES):
        written = json.loads((tmp_path / "out" / f"img{i}.png.out").read_text())
        same_answer(written, in_process.predict_bytes(body, "application/json;verbose")[0])
        assert (tmp_path / "out" / "visualizations" / f"img{i}.png.png").stat().st_size > 0


def test_serving_a_non_deployable_model_id_says_fine_tune_first(tmp_path):
    server = ServerProcess(DEFAULT_MODEL_ID, log_path=tmp_path / "log")
    result = subprocess.run(
        server.command, env=server.env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "not deployable" in result.stderr and "fine-tune" in result.stderr


def test_model_from_s3(real_artifact, in_process, s3, tmp_path, monkeypatch):
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    from boxtune.storage import upload

    upload(real_artifact, "s3://bucket/models/model")
    upload(real_artifact / "model.tar.gz", "s3://bucket/tarballs/model.tar.gz")
    for uri in ("s3://bucket/models/model", "s3://bucket/tarballs/model.tar.gz"):
        remote = InProcessPredictor.load(uri)
        assert uri in remote.description
        same_answer(remote.predict_bytes(IMAGES[1])[0], in_process.predict_bytes(IMAGES[1])[0])


def test_two_workers_serving_a_tarball(real_artifact, in_process, tmp_path):
    server = ServerProcess(
        str(real_artifact / "model.tar.gz"),
        "--workers",
        "2",
        log_path=tmp_path / "log",
        env={"BOXTUNE_HOME": str(tmp_path / "home")},
    )
    with server:
        server.wait_ready(timeout=180)
        with httpx.Client(timeout=60) as client:
            for body in IMAGES:
                response = client.post(
                    f"{server.url}/invocations",
                    content=body,
                    headers={"Content-Type": "application/x-image"},
                )
                assert response.status_code == 200, response.text
                same_answer(response.json(), in_process.predict_bytes(body)[0])
    assert server.process.returncode == 0
    assert "Traceback" not in server.log()

"""The container contract end to end, as the platform runs the image: a training job in a fake
``/opt/ml`` tree (real processes, real files), the hosting container on it (real HTTP),
incremental training from the model channel, and a stop by SIGTERM with a restart that
resumes. Trainings are tiny (12 images of 128 px, 1 epoch)."""

from __future__ import annotations

import json
import signal
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from container_process import ServingContainer, run_training, start_training
from container_tree import CLASSES, TINY, make_ml_root

from boxtune.artifacts import MANIFEST_FILE, TARBALL_FILE, load_artifact
from boxtune.cli import main as cli_main
from boxtune.serve.predictor import InProcessPredictor

pytestmark = pytest.mark.slow

# What the platform's SDKs add: framework estimators JSON-encode every value.
PLATFORM_KEYS = {"sagemaker_program": '"train.py"', "sagemaker_region": '"us-east-1"'}


@dataclass
class Job:
    root: Path
    stdout: str
    stderr: str
    returncode: int

    @property
    def model_dir(self) -> Path:
        return self.root / "model"


def _run(root: Path, **env: str) -> Job:
    result = run_training(root, **env)
    return Job(root, result.stdout, result.stderr, result.returncode)


@pytest.fixture(scope="module")
def first_job(tmp_path_factory, sample_dataset) -> Job:
    root = make_ml_root(
        tmp_path_factory.mktemp("first-job") / "ml",
        training=sample_dataset,
        hyperparameters={**TINY, **PLATFORM_KEYS, "optimizer": '"adam"'},
    )
    (root / "output").mkdir()
    (root / "output" / "failure").write_text("a previous run's reason\n")
    home = tmp_path_factory.mktemp("first-job-home")
    return _run(root, BOXTUNE_HOME=str(home))


def _model_files(model_dir: Path) -> set[str]:
    return {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}


def test_training_job_writes_the_artifact_files_into_the_model_folder(first_job):
    assert first_job.returncode == 0, first_job.stderr
    root = first_job.root
    assert not (root / "output" / "failure").exists()  # the stale reason is gone too

    artifact = load_artifact(first_job.model_dir)  # checks the manifest and every sha256
    assert list(artifact.label_map.names) == CLASSES
    assert artifact.hyperparameters["epochs"] == "1"
    assert artifact.hyperparameters["optimizer"] == "adam"  # JSON-encoded value decoded
    # Exactly the artifact: no model.tar.gz (the platform tars the folder), no checkpoints,
    # no staging folder
    assert _model_files(first_job.model_dir) == {*artifact.files, MANIFEST_FILE}
    assert TARBALL_FILE not in artifact.files

    records = [json.loads(line) for line in (root / "output/data/metrics.jsonl").open()]
    assert [r["epoch"] for r in records] == [0]
    metrics = json.loads((root / "output/data/metrics.json").read_text())
    assert metrics["epochs_completed"] == 1

    # The log lines the platform's metric regexes read, on stdout; one notice for its keys
    assert "[Epoch 0], Speed:" in first_job.stdout and "loss=" in first_job.stdout
    assert "Val_localization=" in first_job.stdout
    notices = [line for line in first_job.stdout.splitlines() if "sagemaker_" in line]
    assert len(notices) == 1 and "sagemaker_program, sagemaker_region" in notices[0]
    assert "fine-tuning pytorch-od1-efficientdet-lite0-320 (from the default model)" in (
        first_job.stdout
    )


def _close(a: list, b: list, tolerance: float) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_serving_container_answers_as_boxtune_does(first_job, sample_dataset, tmp_path):
    assert first_job.returncode == 0, first_job.stderr
    predictor = InProcessPredictor.load(str(first_job.model_dir))
    accept = "application/json;verbose"
    images = sorted((sample_dataset / "images").iterdir())[:2]
    with ServingContainer(
        first_job.root, log_path=tmp_path / "serve.log", SAGEMAKER_MODEL_SERVER_WORKERS="1"
    ) as server:
        server.wait_ready()
        for image in images:
            body = image.read_bytes()
            response = httpx.post(
                f"{server.url}/invocations",
                content=body,
                headers={"Content-Type": "application/x-image", "Accept": accept},
                timeout=60,
            )
            assert response.status_code == 200, response.text
            served = response.json()
            expected, _ = predictor.predict_bytes(body, accept)
            assert served.keys() == expected.keys()
            assert served["labels"] == CLASSES
            assert served["classes"] == expected["classes"]
            assert len(served["classes"]) > 0
            assert _close(served["scores"], expected["scores"], 1e-4)
            assert len(served["normalized_boxes"]) == len(expected["normalized_boxes"])
            for got, want in zip(
                served["normalized_boxes"], expected["normalized_boxes"], strict=True
            ):
                assert _close(got, want, 1e-3)
        assert f"127.0.0.1:{server.port}" in server.log()
    assert server.process.returncode == 0, server.log()


def _platform_tarball(model_dir: Path, target: Path) -> Path:
    """model.tar.gz as the platform (and the SDK's local mode) makes it of /opt/ml/model:
    each entry of the folder at the top of the archive."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        for entry in sorted(model_dir.iterdir()):
            tar.add(entry, arcname=entry.name)
    return target


def test_incremental_training_from_the_model_channel(first_job, sample_dataset, tmp_path):
    assert first_job.returncode == 0, first_job.stderr
    channel = tmp_path / "previous"
    _platform_tarball(first_job.model_dir, channel / TARBALL_FILE)
    root = make_ml_root(
        tmp_path / "ml", training=sample_dataset, model=channel, hyperparameters=TINY
    )
    job = _run(root)
    assert job.returncode == 0, job.stderr
    tarball = root / "input/data/model" / TARBALL_FILE
    assert f"continuing the boxtune artifact of the model channel, {tarball}" in job.stdout
    artifact = load_artifact(job.model_dir)
    assert artifact.metrics["base_artifact"] == str(tarball)
    assert list(artifact.label_map.names) == CLASSES
    first = load_artifact(first_job.model_dir)
    assert artifact.manifest["files"] != first.manifest["files"]  # it trained further


def test_model_id_that_differs_from_the_model_channel_is_refused(
    first_job, sample_dataset, tmp_path, capsys
):
    assert first_job.returncode == 0, first_job.stderr
    root = make_ml_root(
        tmp_path / "ml",
        training=sample_dataset,
        model=first_job.model_dir,  # an unpacked artifact folder as the channel
        hyperparameters={**TINY, "model_id": "pytorch-od1-ssdlite320-mobilenet-v3-large"},
    )
    assert cli_main(["container", "train", "--root", str(root)]) == 1
    failure = (root / "output/failure").read_text()
    assert failure.startswith(f"{root}/input/config/hyperparameters.json (model_id): ")
    assert "model_id=pytorch-od1-ssdlite320-mobilenet-v3-large differs" in failure
    assert "pytorch-od1-efficientdet-lite0-320" in failure
    assert failure.strip() in capsys.readouterr().err
    assert not (root / "model" / MANIFEST_FILE).exists()


def test_sigterm_stops_the_job_and_the_restarted_job_resumes(sample_dataset, tmp_path):
    root = make_ml_root(
        tmp_path / "ml",
        training=sample_dataset,
        hyperparameters={**TINY, "epochs": "3"},
        checkpoints=True,
    )
    process = start_training(root)
    last = root / "checkpoints" / "checkpoints"
    deadline = time.monotonic() + 120
    try:
        while not (last.is_dir() and any(p.name.startswith("last") for p in last.iterdir())):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    failure = (root / "output/failure").read_text()
    assert "stopped by SIGTERM" in failure
    assert f"the checkpoint stays in {root / 'checkpoints'}" in stdout
    assert not (root / "model" / MANIFEST_FILE).exists()

    restarted = _run(root)
    assert restarted.returncode == 0, restarted.stderr
    assert "resuming from" in restarted.stdout
    assert "(the job was restarted)" in restarted.stdout
    records = [json.loads(line) for line in (root / "output/data/metrics.jsonl").open()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert not (root / "output/failure").exists()
    assert load_artifact(root / "model").metrics["epochs_completed"] == 3

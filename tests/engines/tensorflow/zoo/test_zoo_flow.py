"""The platform's flow offline for a TF2 zoo model: the reference checkpoint packed as the zoo
tarball in ``BOXTUNE_HOME/weights``, deployed as is (its 90 COCO classes), fine-tuned for an
epoch, served over HTTP and queried, then trained incrementally from the result."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.engines.tensorflow.zoo import reference
from tests.serve.serve_process import ServerProcess

import boxtune
from boxtune.artifacts import load_artifact
from boxtune.catalog import get_spec
from boxtune.cli import main as cli_main
from boxtune.data import generate_sample_dataset
from boxtune.engines import get_engine
from boxtune.errors import ModelError, TrainingError
from boxtune.jobs.training import training_command
from boxtune.labels import LabelMap
from boxtune.train.hyperparameters import parse_hyperparameters
from boxtune.train.model_setup import build_detector, resolve_model

ZOO_ID = "tensorflow-od1-ssd-mobilenet-v2-fpnlite-320x320-coco17-tpu-8"
ZOO_NAME = reference.FPNLITE_320
PIPELINE_CONFIG = reference.DATA / "pipeline" / f"{ZOO_NAME}.config"


def pack_zoo_tarball(zoo_name: str, target: Path, workdir: Path) -> Path:
    """``<zoo_name>/checkpoint/{checkpoint, ckpt-0.*}`` and ``<zoo_name>/pipeline.config``, the
    layout of the zoo's own tarballs, holding the reference checkpoint."""
    folder = workdir / zoo_name
    reference.reference_checkpoint(zoo_name, folder / "checkpoint")
    shutil.copyfile(PIPELINE_CONFIG, folder / "pipeline.config")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as archive:
        archive.add(folder, arcname=zoo_name)
    return target


@pytest.fixture
def zoo_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BOXTUNE_HOME", str(home))
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")  # the hand-placed tarball, never a download
    pack_zoo_tarball(ZOO_NAME, home / "weights" / f"{ZOO_NAME}.tar.gz", tmp_path / "packing")
    return home


def test_deployed_as_is_it_answers_with_the_90_coco_classes(zoo_home):
    spec = get_spec(ZOO_ID)
    runner = get_engine("tensorflow").pretrained_runner(spec)
    assert len(runner.label_map) == 90 and runner.label_map.names[0] == "person"
    (found,) = runner.predict([reference.photo("")])
    # Random reference weights: near-tied scores, so the API's 100 detections, any class.
    assert len(found.boxes) == 100
    assert found.classes.min() >= 0 and found.classes.max() < 90


def train(*args: str) -> None:
    assert cli_main(["train", *args, "--hp", "epochs=1", "--hp", "batch_size=2", "--quiet"]) == 0


def test_fine_tune_serve_query_and_train_incrementally(zoo_home, tmp_path):
    data = generate_sample_dataset(tmp_path / "shapes", images=8, seed=5)
    labels = ["circle", "triangle", "square", "star"]
    first, second = tmp_path / "first", tmp_path / "second"
    train("--model-id", ZOO_ID, "--training", str(data), "--output", str(first))
    artifact = load_artifact(first)
    assert artifact.model_id == ZOO_ID and list(artifact.label_map.names) == labels
    assert artifact.manifest["architecture"]["name"] == ZOO_NAME

    image = next((data / "images").iterdir()).read_bytes()
    with ServerProcess(str(first), log_path=tmp_path / "serve.log") as server:
        server.wait_ready(timeout=240)
        answer = httpx.post(
            f"{server.url}/invocations",
            content=image,
            headers={"Content-Type": "application/x-image", "Accept": "application/json;verbose"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["labels"] == labels
        assert len(body["normalized_boxes"]) == len(body["classes"]) == len(body["scores"]) > 0
        bad = httpx.post(f"{server.url}/invocations", content=b"not an image", timeout=60)
        assert 400 <= bad.status_code < 500, bad.text

    train("--model", str(first), "--training", str(data), "--output", str(second))
    continued = load_artifact(second)
    assert continued.model_id == ZOO_ID and list(continued.label_map.names) == labels
    assert continued.manifest["architecture"] == artifact.manifest["architecture"]


def test_weights_given_elsewhere_reach_the_engine(tmp_path, monkeypatch):
    """A zoo tarball outside BOXTUNE_HOME (``--weights``, or an Estimator's ``model_uri`` that
    names the zoo's file) is what the run's detector is built from."""
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    tarball = pack_zoo_tarball(ZOO_NAME, tmp_path / "bucket" / f"{ZOO_NAME}.tar.gz", tmp_path)

    estimator = boxtune.Estimator(model_uri=str(tarball))
    assert (estimator.model_id, estimator.weights, estimator.base_model) == (
        ZOO_ID, str(tarball), None,
    )  # fmt: skip
    command = training_command(
        work_dir=tmp_path / "job", training="data", model_id=ZOO_ID, weights=str(tarball)
    )
    assert command[command.index("--weights") + 1] == str(tarball)

    labels = LabelMap.from_categories({1: "person", 2: "dog"})
    hp = parse_hyperparameters(ZOO_ID, {"reinitialize_top_layer": "False"})
    detector = build_detector(resolve_model(ZOO_ID, None, tarball), labels, hp, log=print)
    images = reference.photo("")[None, :320, :320]
    (found,) = detector.predict_batch(np.ascontiguousarray(images))
    assert len(found.boxes) == 100  # the pretrained head's person and dog columns
    with pytest.raises(ModelError, match=r"(?s)cannot be downloaded .*--weights / model_uri"):
        build_detector(resolve_model(ZOO_ID, None), labels, hp, log=print)
    with pytest.raises(TrainingError, match="drop --weights"):
        resolve_model(None, tmp_path / "some-artifact", tarball)

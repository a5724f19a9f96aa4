"""A TF Hub id (``tensorflow-od-…``) deployed as is: its SavedModel's ``serving_default``
(uint8 image in, the Object Detection API's outputs out). The SavedModel is one boxtune itself
exports (same signature), packed as TF Hub serves its compressed models and placed in
``BOXTUNE_HOME/weights``; served over HTTP it answers with the hub model's COCO labels."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tests.serve.serve_process import ServerProcess

from boxtune.catalog import cached_weights_path, get_spec
from boxtune.engines import get_engine
from boxtune.errors import ModelError

skimage_data = pytest.importorskip("skimage.data")

HUB_ID = "tensorflow-od-ssd-mobilenet-v2-2"


def pack_hub_tarball(saved_model: Path, target: Path) -> Path:
    """``./saved_model.pb`` and ``./variables/…``: ``tar -C saved_model -czf target .``"""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as archive:
        archive.add(saved_model, arcname=".")
    return target


@pytest.fixture
def hub_home(tmp_path, monkeypatch, person_artifact) -> Path:
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    pack_hub_tarball(person_artifact / "saved_model", cached_weights_path(get_spec(HUB_ID)))
    return tmp_path / "home"


def test_the_hub_runner_answers_the_serving_signature(hub_home, person_artifact):
    photo = skimage_data.astronaut()
    runner = get_engine("tensorflow").pretrained_runner(get_spec(HUB_ID))
    assert runner.label_map.names[0] == "person" and len(runner.label_map) == 90
    (found,) = runner.predict([photo])

    signature = tf.saved_model.load(str(person_artifact / "saved_model")).signatures[
        "serving_default"
    ]
    out = signature(input_tensor=tf.constant(photo[None]))
    count = int(out["num_detections"][0])
    assert len(found.boxes) == count > 0
    height, width = photo.shape[:2]
    ymin, xmin, ymax, xmax = out["detection_boxes"][0, :count].numpy().T
    expected = np.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=1)
    order = np.argsort(-out["detection_scores"][0, :count].numpy(), kind="stable")
    np.testing.assert_allclose(found.boxes, expected[order], atol=1e-3)
    assert set(found.classes.tolist()) == {0}  # the person detector's label id 1: COCO's person


def test_served_over_http_it_labels_the_astronaut_a_person(hub_home, tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(skimage_data.astronaut()).save(buffer, "JPEG", quality=95)
    with ServerProcess(HUB_ID, log_path=tmp_path / "serve.log") as server:
        server.wait_ready(timeout=240)
        answer = httpx.post(
            f"{server.url}/invocations",
            content=buffer.getvalue(),
            headers={"Content-Type": "application/x-image", "Accept": "application/json;verbose"},
            timeout=60,
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["labels"]) == 90 and body["labels"][0] == "person"
    best = int(np.argmax(body["scores"]))
    assert body["labels"][int(body["classes"][best])] == "person" and body["scores"][best] > 0.5


def test_a_saved_model_without_the_detection_signature_is_a_clear_error(tmp_path, monkeypatch):
    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
        def serve(self, x):
            return {"y": 2 * x}

    module = Doubler()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    monkeypatch.setenv("BOXTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    pack_hub_tarball(tmp_path / "sm", cached_weights_path(get_spec(HUB_ID)))
    with pytest.raises(ModelError, match=r"input 'x' is float32 .* not uint8 images") as err:
        get_engine("tensorflow").pretrained_runner(get_spec(HUB_ID))
    assert "serve a TF2 detection SavedModel" in str(err.value)

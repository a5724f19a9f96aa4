"""``boxtune serve`` on the TensorFlow engine's pretrained person detector, as a real process:
the managed notebook's client draws the astronaut's box where the astronaut is, and the verbose
answer carries ``tensorflow_model_output`` as the managed endpoint's does."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_process import ServerProcess
from test_serve_notebook_client import display_predictions, parse_response, query_endpoint

from boxtune.catalog import TF_PERSON_MODEL_ID

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("tensorflow")


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def person_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("tf-serve") / "log"
    with ServerProcess(TF_PERSON_MODEL_ID, log_path=log) as server:
        server.wait_ready(timeout=240)
        yield server


def test_the_notebook_client_draws_the_astronaut(person_server, tmp_path):
    image_path = tmp_path / "astronaut.jpg"
    image_path.write_bytes(_jpeg(skimage_data.astronaut()))
    boxes, names, scores = parse_response(
        query_endpoint(person_server.url, image_path.read_bytes())
    )
    drawn = display_predictions(str(image_path), boxes, names, scores)
    name, rect = drawn[0]
    assert name == "person" and scores[0] > 0.85
    # The astronaut fills the left two thirds of the 512 x 512 photo, head to the bottom edge
    assert rect.get_x() < 30 and 330 < rect.get_x() + rect.get_width() < 420
    assert rect.get_y() < 60 and rect.get_y() + rect.get_height() > 480
    assert (tmp_path / "astronaut.jpg.pred.png").stat().st_size > 0


def test_the_verbose_answer_carries_the_tensorflow_model_output(person_server):
    response = httpx.post(
        f"{person_server.url}/invocations",
        content=_jpeg(skimage_data.astronaut()),
        headers={"Content-Type": "image/jpeg", "Accept": "application/json;verbose"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["labels"] == ["person"] and "model_output" not in answer
    raw = answer["tensorflow_model_output"]
    assert set(raw) == {
        "detection_boxes",
        "detection_classes",
        "detection_scores",
        "num_detections",
    }
    count = int(raw["num_detections"])
    assert len(raw["detection_boxes"]) == len(raw["detection_scores"]) == 100 and count > 0
    assert raw["detection_classes"][0] == 1.0  # the API's 1-based person label
    ymin, xmin, ymax, xmax = raw["detection_boxes"][0]
    assert answer["normalized_boxes"][0] == pytest.approx([xmin, ymin, xmax, ymax], abs=1e-6)
    assert answer["scores"][0] == pytest.approx(raw["detection_scores"][0], abs=1e-6)
    json.dumps(answer)  # plain JSON all the way down


def test_photos_without_people_score_low(person_server):
    for photo in (skimage_data.coffee(), skimage_data.chelsea()):
        response = httpx.post(
            f"{person_server.url}/invocations",
            content=_jpeg(photo),
            headers={"Content-Type": "application/x-image"},
            timeout=60,
        )
        assert response.status_code == 200 and max(response.json()["scores"]) < 0.05

"""The Keras port of the pretrained person detector equals its TF Object Detection API frozen
graph: the graph itself runs here (``tf.import_graph_def`` in a v1 Session) on real photos, and
boxtune's anchors, raw outputs, pretrained runner and exported ``serving_default`` are compared
with it number for number."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from boxtune.catalog import TF_PERSON_MODEL_ID, get_spec, resolve_weights
from boxtune.engines import get_engine
from boxtune.engines.tensorflow.anchors import SSDAnchorConfig, grid_anchors
from boxtune.labels import LabelMap

SIZE = 300
NUM_ANCHORS = 1917
# The feature maps of a 300 px SSDLite-MobileNetV2 (strides 16, 32, 64, 128, 256, 512)
GRIDS_300 = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
PERSON = LabelMap.from_categories({1: "person"})
GRAPH_TENSORS = {
    "preprocessed": "Preprocessor/sub:0",
    "codes": "concat:0",  # [1, A, 1, 4]
    "logits": "concat_1:0",  # [1, A, 2], background first
    "anchors": "Concatenate/concat:0",  # [A, 4]
    "boxes": "detection_boxes:0",
    "scores": "detection_scores:0",
    "classes": "detection_classes:0",
    "count": "num_detections:0",
}
PHOTOS = ("astronaut", "coffee", "chelsea")  # a person; a cup of coffee; a cat


def _photo(name: str) -> np.ndarray:
    """The scikit-image photo, pre-resized (PIL bilinear) so both models see the same pixels."""
    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    return np.asarray(image.resize((SIZE, SIZE), Image.BILINEAR))


@pytest.fixture(scope="module")
def spec():
    return get_spec(TF_PERSON_MODEL_ID)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: _photo(name) for name in PHOTOS}


@pytest.fixture(scope="module")
def graph_outputs(spec, photos) -> dict[str, dict[str, np.ndarray]]:
    """The frozen graph's own outputs on each photo."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(resolve_weights(spec).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    outputs = {}
    with tf.compat.v1.Session(graph=graph) as session:
        for name, image in photos.items():
            values = session.run(list(GRAPH_TENSORS.values()), {"image_tensor:0": image[None]})
            outputs[name] = dict(zip(GRAPH_TENSORS, values, strict=True))
    return outputs


@pytest.fixture(scope="module")
def detector(spec):
    """The pretrained detector with the graph's own class head."""
    return get_engine("tensorflow").create(spec, PERSON, reinitialize_head=False)


@pytest.fixture(scope="module")
def runner(spec):
    return get_engine("tensorflow").pretrained_runner(spec)


def test_the_graph_sees_the_photos_as_expected(graph_outputs):
    """Guards the reference itself: the astronaut is a confident person, nothing else is."""
    top = graph_outputs["astronaut"]
    assert top["scores"][0, 0] > 0.85 and top["classes"][0, 0] == 1.0
    np.testing.assert_allclose(top["boxes"][0, 0], [0.066, 0.006, 0.994, 0.736], atol=5e-3)
    for name in ("coffee", "chelsea"):
        assert graph_outputs[name]["scores"][0, 0] < 0.05, name


def test_anchors_equal_the_graphs(graph_outputs, detector):
    expected = graph_outputs["astronaut"]["anchors"]
    assert expected.shape == (NUM_ANCHORS, 4)
    anchors = grid_anchors(GRIDS_300, SSDAnchorConfig(), (SIZE, SIZE))
    assert anchors.shape == expected.shape and anchors.dtype == np.float32
    np.testing.assert_allclose(anchors, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(detector.network.anchors, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", PHOTOS)
def test_raw_box_codes_and_class_logits_equal_the_graphs(graph_outputs, detector, photos, name):
    graph = graph_outputs[name]
    images = tf.constant(photos[name][None])
    preprocessed = detector.network.preprocess(images).numpy()
    np.testing.assert_allclose(preprocessed, graph["preprocessed"], rtol=0, atol=1e-6)
    codes, logits = detector.model(preprocessed, training=False)
    assert codes.shape == (1, NUM_ANCHORS, 4) and logits.shape == (1, NUM_ANCHORS, 2)
    np.testing.assert_allclose(codes.numpy(), graph["codes"][:, :, 0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits.numpy(), graph["logits"], rtol=0, atol=1e-4)


def _normalised_yxyx(pixel_xyxy: np.ndarray) -> np.ndarray:
    xmin, ymin, xmax, ymax = np.asarray(pixel_xyxy, np.float64) / SIZE
    return np.array([ymin, xmin, ymax, xmax])


def test_the_pretrained_runner_finds_the_astronaut_as_the_graph_does(graph_outputs, runner, photos):
    (found,) = runner.predict([photos["astronaut"]])
    graph = graph_outputs["astronaut"]
    assert len(found) > 0
    top = int(np.argmax(found.scores))
    assert runner.label_map.names[int(found.classes[top])] == "person"
    score, box = float(found.scores[top]), _normalised_yxyx(found.boxes[top])
    assert score > 0.85
    assert abs(score - float(graph["scores"][0, 0])) < 1e-3
    np.testing.assert_allclose(box, graph["boxes"][0, 0], rtol=0, atol=1e-3)
    ymin, xmin, ymax, xmax = box
    centre_y, centre_x = (ymin + ymax) / 2, (xmin + xmax) / 2
    # the astronaut sits left of the middle, over the image's whole height
    assert 0.2 < centre_x < 0.5 and 0.35 < centre_y < 0.7, box
    assert ymax - ymin > 0.8 and 0.5 < xmax - xmin < 0.9, box
    # the raw outputs the verbose answer carries are the graph's too
    raw = found.model_output
    np.testing.assert_allclose(raw["detection_boxes"][0], graph["boxes"][0, 0], atol=1e-3)
    assert raw["detection_classes"][0] == 1.0


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_no_person_in_photos_without_one(graph_outputs, runner, photos, name):
    (found,) = runner.predict([photos[name]])
    assert graph_outputs[name]["scores"][0, 0] < 0.05
    assert len(found) == 0 or float(found.scores.max()) < 0.05, found.scores[:5]


@pytest.fixture(scope="module")
def serving_outputs(person_artifact, photos) -> dict[str, np.ndarray]:
    """The exported artifact's ``serving_default`` on the astronaut: ``person_artifact``
    (conftest.py) is ``write_artifact`` of a detector built as ``detector`` is."""
    loaded = tf.saved_model.load(str(person_artifact / "saved_model"))
    serve = loaded.signatures["serving_default"]
    image = tf.constant(photos["astronaut"][None])
    return {k: v.numpy() for k, v in serve(input_tensor=image).items()}


def test_the_exported_serving_default_answers_as_the_graph(graph_outputs, serving_outputs):
    out = serving_outputs
    expected = {
        "detection_boxes": ((1, 100, 4), np.float32),
        "detection_scores": ((1, 100), np.float32),
        "detection_classes": ((1, 100), np.float32),
        "num_detections": ((1,), np.float32),
        "detection_anchor_indices": ((1, 100), np.float32),
        "raw_detection_boxes": ((1, NUM_ANCHORS, 4), np.float32),
        "raw_detection_scores": ((1, NUM_ANCHORS, 2), np.float32),
    }
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == expected

    graph = graph_outputs["astronaut"]
    assert out["num_detections"][0] == graph["count"][0] == 100
    # the top scores are well apart: the same five boxes in the same order
    top = 5
    np.testing.assert_allclose(
        out["detection_scores"][0, :top], graph["scores"][0, :top], rtol=0, atol=1e-3
    )
    np.testing.assert_allclose(
        out["detection_boxes"][0, :top], graph["boxes"][0, :top], rtol=0, atol=1e-3
    )
    assert out["detection_scores"][0, 0] > 0.85 and out["detection_classes"][0, 0] == 1.0
    np.testing.assert_array_equal(out["detection_classes"][0], graph["classes"][0])
    # raw outputs: every anchor's sigmoid scores (background column included), and the top
    # detection is its anchor's decoded box
    np.testing.assert_allclose(
        out["raw_detection_scores"][0], 1 / (1 + np.exp(-graph["logits"][0])), rtol=0, atol=1e-4
    )
    anchor = int(out["detection_anchor_indices"][0, 0])
    np.testing.assert_allclose(
        out["raw_detection_boxes"][0, anchor], out["detection_boxes"][0, 0], rtol=0, atol=1e-6
    )
    assert out["raw_detection_scores"][0, anchor, 1] == pytest.approx(
        out["detection_scores"][0, 0], abs=1e-6
    )


def test_all_one_hundred_detections_equal_the_graphs(graph_outputs, serving_outputs):
    graph = graph_outputs["astronaut"]
    np.testing.assert_allclose(
        serving_outputs["detection_scores"][0], graph["scores"][0], rtol=0, atol=1e-3
    )
    np.testing.assert_allclose(
        serving_outputs["detection_boxes"][0], graph["boxes"][0], rtol=0, atol=1e-3
    )

"""Zoo models through the engine's training step. EfficientDet: its class head has no background
column (class k is column k), so keeping pretrained classes picks columns k - 1, and the loss
trains without one. From random weights, batch-norm statistics keep up with a short run."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from _engine_helpers import LABELS, hp, make_batch
from tests.engines.tensorflow.zoo import reference

from boxtune.catalog import get_spec
from boxtune.engines import get_engine
from boxtune.engines.tensorflow.engine import pretrained_label_map
from boxtune.engines.tensorflow.ssd_loss import ssd_losses
from boxtune.labels import LabelMap

D0_ID = "tensorflow-od1-ssd-efficientdet-d0-512x512-coco17-tpu-8"
FPNLITE_ID = "tensorflow-od1-ssd-mobilenet-v2-fpnlite-320x320-coco17-tpu-8"
SIZE = 128  # the same network on 1/16 of the pixels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return reference.reference_checkpoint(reference.EFFICIENTDET_D0, tmp_path_factory.mktemp("d0"))


def _logits(detector, images: np.ndarray) -> np.ndarray:
    _, logits = detector.model(detector.network.preprocess(images), training=False)
    return logits.numpy()


def test_keeping_pretrained_classes_keeps_their_columns(checkpoint):
    engine, spec = get_engine("tensorflow"), get_spec(D0_ID)
    coco = engine.create(
        spec, pretrained_label_map(spec), reinitialize_head=False, image_size=SIZE,
        weights=checkpoint,
    )  # fmt: skip
    kept = engine.create(
        spec, LabelMap.from_categories({1: "dog", 2: "person"}), reinitialize_head=False,
        image_size=SIZE, weights=checkpoint,
    )  # fmt: skip
    images, _ = make_batch(0, 1, SIZE)
    all_columns, two_columns = _logits(coco, images), _logits(kept, images)
    assert all_columns.shape[-1] == 90 and two_columns.shape[-1] == 2  # no background column
    dog, person = spec.class_names.index("dog"), spec.class_names.index("person")
    np.testing.assert_allclose(two_columns, all_columns[..., [dog, person]], atol=1e-5)


def test_a_new_head_trains_and_detects_its_classes(checkpoint):
    engine = get_engine("tensorflow")
    engine.seed(0)  # the new head's initial weights: the same every run
    detector = engine.create(
        get_spec(D0_ID), LabelMap.from_categories({1: "ellipse", 2: "rectangle"}),
        image_size=SIZE, weights=checkpoint,
    )  # fmt: skip
    detector.configure_optimizer(hp(learning_rate=0.01))
    images, targets = make_batch(1, 2, SIZE)
    before = [v.numpy() for v in detector.model.trainable_variables]
    losses = [detector.train_step(images, targets)["loss"] for _ in range(3)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    after = detector.model.trainable_variables
    assert any(not np.array_equal(b, np.asarray(a)) for b, a in zip(before, after, strict=True))
    found = detector.predict_batch(images)
    assert len(found) == 2 and all(len(d.boxes) > 0 for d in found)
    assert all(set(d.classes.tolist()) <= {0, 1} for d in found)


def _loss(detector, images, targets, *, training: bool) -> float:
    network = detector.network
    codes, logits = detector.model(network.preprocess(tf.constant(images)), training=training)
    boxes, classes, valid = detector._targets(targets)
    anchors = tf.constant(network.anchors)
    losses = ssd_losses(codes, logits, anchors, boxes, classes, valid, config=network.loss)
    return float(losses["loss"])


def test_from_random_weights_inference_mode_keeps_up_with_training():
    """Fit one batch: the moving batch-norm statistics must follow, or the model that serves
    (inference mode) is not the one that trained. At the API's slow decays (0.99) the
    inference-mode loss stayed at its start (2.10) while the training-mode loss reached 0.001."""
    engine = get_engine("tensorflow")
    engine.seed(0)
    detector = engine.create(get_spec(FPNLITE_ID), LABELS, init="random", image_size=64)
    detector.configure_optimizer(hp(learning_rate=0.001))
    images, targets = make_batch(0, 4, 64)
    start = _loss(detector, images, targets, training=False)
    for _ in range(150):
        detector.train_step(images, targets)
    trained = _loss(detector, images, targets, training=True)
    served = _loss(detector, images, targets, training=False)
    assert trained < 0.05 * start
    assert served < 0.05 * start, f"inference mode {served:.3f}, training mode {trained:.3f}"


def test_pretrained_zoo_models_keep_their_configs_batch_norm_decay(checkpoint):
    detector = get_engine("tensorflow").create(
        get_spec(D0_ID), LABELS, image_size=SIZE, weights=checkpoint
    )
    momenta = {
        layer.momentum
        for layer in detector.model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert momenta == {0.99}  # efficientdet_d0's batch_norm decay

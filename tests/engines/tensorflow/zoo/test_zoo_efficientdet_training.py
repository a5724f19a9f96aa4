"""EfficientDet through the engine: its class head has no background column (class k is column
k), so keeping pretrained classes picks columns k - 1, and the loss trains without one."""

from __future__ import annotations

import numpy as np
import pytest
from _engine_helpers import hp, make_batch
from tests.engines.tensorflow.zoo import reference

from boxtune.catalog import get_spec
from boxtune.engines import get_engine
from boxtune.engines.tensorflow.engine import pretrained_label_map
from boxtune.labels import LabelMap

D0_ID = "tensorflow-od1-ssd-efficientdet-d0-512x512-coco17-tpu-8"
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

"""The zoo models' anchors and SSD post-processing equal the TF Object Detection API's: the
multiscale anchors bit for bit, and the detections (keyed by anchor index, the scores of these
random-weight references being near-ties) of both reference models, with the box coder scales
of configs/tf2 and of the EfficientDet tarball, the non-square photo's clip window included."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tests.engines.tensorflow.zoo import reference
from tests.engines.tensorflow.zoo.test_zoo_box_predictor import build

import boxtune.engines.tensorflow  # noqa: F401  (before keras: environment, import order)
from boxtune.engines.tensorflow.postprocess import (
    ZOO_POSTPROCESS,
    PostprocessConfig,
    clip_window,
    decode_boxes,
    detect,
)
from boxtune.engines.tensorflow.zoo.anchors import (
    feature_map_shapes,
    multiscale_anchors,
    multiscale_grid_anchors,
)
from boxtune.engines.tensorflow.zoo.box_predictor import (
    box_predictor_checkpoint_map,
    is_box_predictor_key,
)
from boxtune.engines.tensorflow.zoo.checkpoint import read_checkpoint, restore
from boxtune.engines.tensorflow.zoo.configs import zoo_config

TARBALL_SCALES = (1.0, 1.0, 1.0, 1.0)


def input_size(zoo_name: str) -> tuple[int, int]:
    height, width = reference.config_facts(zoo_name)["image_size_hw"]
    return height, width


def anchors_of(zoo_name: str) -> np.ndarray:
    generator = reference.config_facts(zoo_name)["anchor_generator"]
    size = input_size(zoo_name)
    levels = {"min_level": generator["min_level"], "max_level": generator["max_level"]}
    return multiscale_grid_anchors(
        feature_map_shapes=feature_map_shapes(size, **levels),
        image_shape=size,
        anchor_scale=generator["anchor_scale"],
        aspect_ratios=generator["aspect_ratios"],
        scales_per_octave=generator["scales_per_octave"],
        **levels,
    )


def postprocess_config(zoo_name: str, scales=None) -> PostprocessConfig:
    facts = reference.config_facts(zoo_name)
    nms = facts["post_processing"]["raw"]["batch_non_max_suppression"]
    assert facts["post_processing"]["score_converter"] == "SIGMOID"
    return dataclasses.replace(
        ZOO_POSTPROCESS,
        score_threshold=nms["score_threshold"],
        iou_threshold=nms["iou_threshold"],
        max_detections_per_class=nms["max_detections_per_class"],
        max_total_detections=nms["max_total_detections"],
        box_coder_scales=tuple(scales or facts["box_coder_scales_y_x_h_w"]),
        background_column=facts["add_background_class"],
    )


@pytest.mark.parametrize("zoo_name", reference.REFERENCE_MODELS)
def test_the_anchors_are_the_apis_bit_for_bit(zoo_name):
    outputs = reference.reference_outputs(zoo_name)
    shapes = feature_map_shapes(input_size(zoo_name), min_level=3, max_level=7)
    assert shapes == [outputs.shape(f"predict/feature_maps/{i}")[1:3] for i in range(5)]
    anchors = anchors_of(zoo_name)
    assert anchors.dtype == np.float32
    assert outputs.max_abs_diff("predict/anchors", anchors) == 0.0
    # the same from the zoo model's own record
    config = zoo_config(zoo_name)
    same = multiscale_anchors(shapes, config.anchors, (config.image_size,) * 2)
    np.testing.assert_array_equal(same, anchors)


def test_anchor_centres_are_offset_only_on_levels_that_divide_the_input():
    # 320 px: level 7 (stride 128) does not divide it, its 3 x 3 centres start at 0
    anchors = multiscale_grid_anchors(
        feature_map_shapes=[(3, 3)],
        image_shape=(320, 320),
        min_level=7,
        max_level=7,
        anchor_scale=4.0,
        aspect_ratios=(1.0,),
        scales_per_octave=1,
        normalize_coordinates=False,
    )
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_array_equal(centres[:3], [[0, 0], [0, 128], [0, 256]])
    np.testing.assert_array_equal(anchors[0, 2:] - anchors[0, :2], [512, 512])


@pytest.fixture(scope="module", params=reference.REFERENCE_MODELS)
def predictions(request, tmp_path_factory):
    """(zoo name, box encodings, class logits) of the astronaut photo: the reference feature
    maps through the box predictor loaded with the reference checkpoint."""
    zoo_name = request.param
    values = read_checkpoint(reference.reference_checkpoint(zoo_name, tmp_path_factory.mktemp("c")))
    model = build(zoo_name)
    values = {key: value for key, value in values.items() if is_box_predictor_key(key)}
    restore(box_predictor_checkpoint_map(model), values, where=zoo_name)
    outputs = reference.reference_outputs(zoo_name)
    features = [outputs.full(f"predict/feature_maps/{i}") for i in range(5)]
    codes, logits = model(features, training=False)
    assert outputs.max_abs_diff("predict/box_encodings", codes) <= 1e-4
    return zoo_name, codes.numpy(), logits.numpy()


def assert_detections_equal(found, logits, outputs, prefix: str, config: PostprocessConfig):
    count = int(outputs.full(f"{prefix}num_detections")[0])
    assert int(found["num_detections"][0]) == count
    expected = {
        int(a): i
        for i, a in enumerate(outputs.full(f"{prefix}detection_anchor_indices")[0][:count])
    }
    actual = {int(a): i for i, a in enumerate(found["anchor_indices"][0][:count])}
    assert set(actual) == set(expected)
    order = [actual[a] for a in expected]  # ours, in the reference's order
    np.testing.assert_allclose(
        found["boxes"][0].numpy()[order],
        outputs.full(f"{prefix}detection_boxes")[0][:count],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        found["scores"][0].numpy()[order],
        outputs.full(f"{prefix}detection_scores")[0][:count],
        atol=1e-6,
    )
    np.testing.assert_array_equal(
        found["classes"][0].numpy()[order], outputs.full(f"{prefix}detection_classes")[0][:count]
    )
    # detection_multiclass_scores: every column's sigmoid (background too) at the kept anchors
    multiclass = tf.sigmoid(logits[0][list(expected)]).numpy()
    np.testing.assert_allclose(
        multiclass, outputs.full(f"{prefix}detection_multiclass_scores")[0][:count], atol=1e-6
    )


@pytest.mark.parametrize("source", ["configs_tf2", "zoo_tarball"])
def test_the_detections_are_the_apis(predictions, source):
    zoo_name, codes, logits = predictions
    outputs = reference.reference_outputs(zoo_name)
    if source == "zoo_tarball":
        if zoo_name != reference.EFFICIENTDET_D0:
            pytest.skip("only the EfficientDet reference has a zoo tarball config")
        config, prefix = (
            postprocess_config(zoo_name, TARBALL_SCALES),
            "postprocess_zoo_tarball_config/",
        )
    else:
        config, prefix = postprocess_config(zoo_name), "postprocess/"
    anchors = tf.constant(anchors_of(zoo_name))
    raw_boxes = decode_boxes(tf.constant(codes), anchors, config, clip=False)
    assert outputs.max_abs_diff(f"{prefix}raw_detection_boxes", raw_boxes) <= 1e-6
    window = clip_window(outputs.full("true_image_shapes"), input_size(zoo_name))
    found = detect(tf.constant(codes), tf.constant(logits), anchors, config, clip_window=window)
    assert_detections_equal(found, logits, outputs, prefix, config)

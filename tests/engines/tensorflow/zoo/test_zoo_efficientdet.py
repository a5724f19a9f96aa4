"""The zoo's EfficientNet backbone and BiFPN (EfficientDet D0-D3): checkpoint keys and shapes
equal the zoo manifests', together they hold the whole feature extractor (unused classifier top
included), and with the reference checkpoint loaded through the maps they reproduce the TF
Object Detection API's backbone endpoints and feature maps of efficientdet_d0.

The reference's random weights make its outputs nearly independent of the image (astronaut and
chelsea differ by <2e-7), so the input-dependent path of the backbone is checked as well against
Keras' own EfficientNet-B0 (same architecture, other layout) with the same random weights."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import pytest
from tests.engines.tensorflow.zoo import reference

from boxtune.engines.tensorflow.zoo.bifpn import bifpn_checkpoint_map, build_bifpn
from boxtune.engines.tensorflow.zoo.efficientnet import (
    build_efficientnet_backbone,
    efficientnet_backbone_checkpoint_map,
    endpoint_channels,
)

EFFICIENTDETS = [name for name in reference.ZOO_MODELS if name.startswith("efficientdet")]
BACKBONE_PREFIXES = (
    "model/_feature_extractor/_efficientnet/",
    "model/_feature_extractor/classification_backbone/",
)
BIFPN_PREFIX = "model/_feature_extractor/_bifpn_stage/"
# The taps stack_2/block_1/add, stack_4/block_2/add, stack_6/block_0/project_bn per variant
TAP_CHANNELS = {
    "b0": [40, 112, 320],
    "b1": [40, 112, 320],
    "b2": [48, 120, 352],
    "b3": [48, 136, 384],
}
MAX_ABS_DIFF = 1e-4  # measured: below 2e-7 everywhere


def shapes(mapping: dict) -> dict[str, tuple[int, ...]]:
    return {key: tuple(variable.shape) for key, variable in mapping.items()}


def manifest_part(zoo_name: str, prefixes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    variables = reference.manifest_variables(zoo_name)
    return {key: shape for key, shape in variables.items() if key.startswith(prefixes)}


def variant_of(zoo_name: str) -> str:
    extractor = reference.config_facts(zoo_name)["feature_extractor"]
    return re.fullmatch(r"ssd_efficientnet-(b\d)_bifpn_keras", extractor["type"]).group(1)


@functools.cache
def feature_extractor(zoo_name: str):
    """The zoo model's backbone and BiFPN (built once per module: D3's takes seconds)."""
    extractor = reference.config_facts(zoo_name)["feature_extractor"]
    bifpn = extractor["bifpn"]
    backbone = build_efficientnet_backbone(variant=variant_of(zoo_name), name="efficientnet")
    neck = build_bifpn(
        input_channels=[int(output.shape[-1]) for output in backbone.outputs],
        min_level=bifpn["min_level"],
        max_level=bifpn["max_level"],
        filters=max(bifpn["num_filters"], extractor["min_depth"]),
        iterations=bifpn["num_iterations"],
        name="bifpn",
    )
    return backbone, neck


@pytest.mark.parametrize("zoo_name", EFFICIENTDETS, ids=str)
def test_keys_shapes_and_parameter_count_equal_the_manifest(zoo_name):
    backbone, neck = feature_extractor(zoo_name)
    variant = variant_of(zoo_name)
    assert endpoint_channels(variant) == TAP_CHANNELS[variant]
    assert [int(o.shape[-1]) for o in backbone.outputs] == TAP_CHANNELS[variant]

    backbone_map = efficientnet_backbone_checkpoint_map(backbone)
    assert shapes(backbone_map) == manifest_part(zoo_name, BACKBONE_PREFIXES)
    neck_map = bifpn_checkpoint_map(neck)
    assert shapes(neck_map) == manifest_part(zoo_name, (BIFPN_PREFIX,))

    # every variable exactly once, and the whole feature extractor (unused top included)
    variables = backbone.weights + neck.weights
    mapping = {**backbone_map, **neck_map}
    assert len(mapping) == len(backbone_map) + len(neck_map)
    assert {id(v) for v in mapping.values()} == {id(v) for v in variables}
    assert len(mapping) == len(variables)
    whole = manifest_part(zoo_name, ("model/_feature_extractor/",))
    assert shapes(mapping) == whole
    params = sum(math.prod(shape) for shape in whole.values())
    assert backbone.count_params() + neck.count_params() == params
    assert len(neck.outputs) == 5  # levels 3..7


def test_feature_map_shapes_of_d1():
    import keras

    backbone, neck = feature_extractor("efficientdet_d1_coco17_tpu-32")
    features = neck(backbone(keras.Input((640, 640, 3), batch_size=1)))
    assert [tuple(f.shape) for f in features] == [
        (1, 640 // 2**level, 640 // 2**level, 88) for level in range(3, 8)
    ]


@pytest.fixture(scope="module")
def reference_values(tmp_path_factory) -> dict[str, np.ndarray]:
    """efficientdet_d0's reference checkpoint, read back with tf.train.load_checkpoint."""
    import tensorflow as tf

    zoo_name = reference.EFFICIENTDET_D0
    prefix = reference.reference_checkpoint(zoo_name, tmp_path_factory.mktemp("ckpt"))
    checkpoint = tf.train.load_checkpoint(prefix)
    keys = [key.removesuffix(reference.SUFFIX) for key in checkpoint.get_variable_to_shape_map()]
    return {
        key: checkpoint.get_tensor(key + reference.SUFFIX)
        for key in keys
        if key.startswith("model/_feature_extractor/")
    }


@pytest.mark.parametrize("photo", ["", "chelsea/"], ids=["astronaut", "chelsea"])
def test_reproduces_the_reference_backbone_and_feature_maps(reference_values, photo):
    from boxtune.engines.tensorflow.zoo.preprocessing import ZooPreprocessing, preprocess_image

    zoo_name = reference.EFFICIENTDET_D0
    backbone, neck = feature_extractor(zoo_name)
    mapping = {**efficientnet_backbone_checkpoint_map(backbone), **bifpn_checkpoint_map(neck)}
    assert mapping.keys() == reference_values.keys()  # every feature-extractor key consumed
    for key, variable in mapping.items():
        variable.assign(reference_values[key])

    outputs = reference.reference_outputs(zoo_name)
    images, _ = preprocess_image(
        reference.photo(photo), ZooPreprocessing("efficientnet", "keep_aspect_pad", 512)
    )
    assert outputs.max_abs_diff(f"{photo}preprocessed_inputs", images) <= 1e-5
    endpoints = backbone(images, training=False)
    assert len(endpoints) == 3
    for i, endpoint in enumerate(endpoints):
        assert outputs.max_abs_diff(f"{photo}backbone/{i}", endpoint) <= MAX_ABS_DIFF, i
    feature_maps = neck(list(endpoints), training=False)
    assert len(feature_maps) == 5
    for i, feature_map in enumerate(feature_maps):
        diff = outputs.max_abs_diff(f"{photo}predict/feature_maps/{i}", feature_map)
        assert diff <= MAX_ABS_DIFF, i


KERAS_APPLICATION_OPS = {
    "expand_conv2d": "expand_conv",
    "depthwise_conv2d": "dwconv",
    "depthwise_bn": "bn",
    "se_reduce_conv2d": "se_reduce",
    "se_expand_conv2d": "se_expand",
    "project_conv2d": "project_conv",
}
KERAS_APPLICATION_TAPS = ["block3b_add", "block5c_add", "block7a_project_bn"]


def keras_application_name(tf_name: str) -> str:
    """The layer of keras.applications' EfficientNet that matches one of the API's layers."""
    match = re.fullmatch(r"stack_(\d+)/block_(\d+)/(\w+)", tf_name)
    if match is None:
        return {"stem_conv2d": "stem_conv", "stem_bn": "stem_bn"}[tf_name]
    stack, block, op = int(match[1]), int(match[2]), match[3]
    return f"block{stack + 1}{'abcdefghij'[block]}_{KERAS_APPLICATION_OPS.get(op, op)}"


def test_b0_endpoints_match_keras_applications_on_a_photo():
    """Input-dependent activations (spatial std ~0.1): same values as keras.applications'
    EfficientNetB0 (weights=None, no download) holding the same random weights."""
    import keras

    size = 256
    backbone = build_efficientnet_backbone(variant="b0", image_size=size, name="b0")
    application = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    rng = np.random.default_rng(0)
    copied = 0
    for layer in backbone.layers:
        if not layer.weights or layer.name == "b0.classification_top":
            continue
        other = application.get_layer(keras_application_name(layer.name[3:].replace(".", "/")))
        for variable, twin in zip(layer.weights, other.weights, strict=True):
            shape = tuple(variable.shape)
            if variable.name == "moving_variance":
                value = rng.uniform(0.5, 1.5, shape)
            elif variable.name == "gamma":
                value = rng.uniform(0.8, 1.6, shape)
            elif variable.name == "kernel":
                depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
                fan_in = math.prod(shape[:2] if depthwise else shape[:-1])
                value = rng.standard_normal(shape) / math.sqrt(fan_in)
            else:
                value = rng.standard_normal(shape) * 0.2
            variable.assign(value.astype(np.float32))
            twin.assign(value.astype(np.float32))
            copied += 1
    # all but its input normalisation and its top (stack_6's output, the backbone's head)
    blocks = [layer for layer in application.layers if layer.name.startswith(("stem", "block"))]
    assert copied == sum(len(layer.weights) for layer in blocks)

    photo = reference.photo("")[:size, 128 : 128 + size][None].astype(np.float32)
    offset, scale = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    images = ((photo / 255.0 - offset) / scale).astype(np.float32)
    taps = keras.Model(
        application.inputs, [application.get_layer(n).output for n in KERAS_APPLICATION_TAPS]
    )
    # keras.applications rescales by 1/255 and normalises with an identity Normalization
    expected = taps(images * 255.0, training=False)
    actual = backbone(images, training=False)
    for want, got in zip(expected, actual, strict=True):
        want, got = np.asarray(want), np.asarray(got)
        assert want.std(axis=(1, 2)).mean() > 0.01  # the check sees the image
        assert np.abs(want - got).max() <= 1e-4

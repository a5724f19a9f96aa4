"""The ResNet-v1 50/101/152 and MobileNetV1 backbones of the TF2 zoo's SSD-FPN models: their
checkpoint maps hold exactly the zoo checkpoints' backbone keys with the same shapes, their
endpoints have strides 4/8/16/32, and they compute what the TF Object Detection API's layers
compute (checked against a hand-written ``tf.nn`` forward pass with the same weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tests.engines.tensorflow.zoo.reference import manifest_variables

from boxtune.engines.tensorflow.zoo.mobilenet_v1 import (
    BLOCKS,
    build_mobilenet_v1_backbone,
    mobilenet_v1_backbone_checkpoint_map,
)
from boxtune.engines.tensorflow.zoo.resnet_v1 import (
    STAGE_BLOCKS,
    build_resnet_v1_backbone,
    resnet_v1_backbone_checkpoint_map,
)

PREFIX = "model/_feature_extractor/classification_backbone/"
SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
MOBILENET_V1 = "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8"
EPSILON = 1e-3
FULL_MANIFESTS = Path("/work/shared/reference/tf2-zoo/manifests")  # not in CI


def resnet_zoo(depth: int, size: int = 640) -> str:
    return f"ssd_resnet{depth}_v1_fpn_{size}x{size}_coco17_tpu-8"


@pytest.fixture(scope="module")
def backbones() -> dict:
    """One model and its map per backbone, built once (ResNet-152 takes seconds)."""
    built = {}
    for depth in STAGE_BLOCKS:
        model = build_resnet_v1_backbone(depth=depth)
        built[f"resnet{depth}"] = (model, resnet_v1_backbone_checkpoint_map(model))
    model = build_mobilenet_v1_backbone()
    built["mobilenet_v1"] = (model, mobilenet_v1_backbone_checkpoint_map(model))
    return built


ZOO_OF_BACKBONE = [
    *[(f"resnet{d}", resnet_zoo(d, s)) for d in STAGE_BLOCKS for s in (640, 1024)],
    ("mobilenet_v1", MOBILENET_V1),
]


@pytest.mark.parametrize(("backbone", "zoo_name"), ZOO_OF_BACKBONE)
def test_map_has_the_zoo_backbone_keys_and_shapes(backbones, backbone, zoo_name):
    model, mapping = backbones[backbone]
    expected = {k: s for k, s in manifest_variables(zoo_name).items() if k.startswith(PREFIX)}
    assert expected, zoo_name
    assert set(mapping) == set(expected)
    assert {k: tuple(v.shape) for k, v in mapping.items()} == expected
    # every variable of the sub-model exactly once: restoring consumes all of them
    assert len({id(v) for v in mapping.values()}) == len(mapping) == len(model.variables)
    assert sum(math.prod(s) for s in expected.values()) == model.count_params()


def test_1024_models_share_the_640_backbone_keys():
    for depth in STAGE_BLOCKS:
        small, large = (
            manifest_variables(resnet_zoo(depth)),
            manifest_variables(resnet_zoo(depth, 1024)),
        )
        assert {k: s for k, s in small.items() if k.startswith(PREFIX)} == {
            k: s for k, s in large.items() if k.startswith(PREFIX)
        }


def _layer_of(variable) -> str:
    """``resnet50_v1.conv2_block1_0_conv/kernel`` -> ``conv2_block1_0_conv``."""
    return variable.path.rsplit("/", 1)[0].split(".", 1)[1]


def test_first_block_order_puts_the_shortcut_before_the_third_conv(backbones):
    """In conv2_block1 the 1x1 shortcut and the third 1x1 conv have one shape, so shapes cannot
    tell them apart; the zoo checkpoint (tf.keras layer order) numbers the shortcut first."""
    _, mapping = backbones["resnet50"]
    expected = {
        0: "conv1_conv",
        1: "conv1_bn",
        2: "conv2_block1_1_conv",
        5: "conv2_block1_2_bn",
        6: "conv2_block1_0_conv",
        7: "conv2_block1_3_conv",
        8: "conv2_block1_0_bn",
        9: "conv2_block1_3_bn",
        10: "conv2_block2_1_conv",
    }
    for index, layer in expected.items():
        leaf = "kernel" if layer.endswith("conv") else "gamma"
        assert _layer_of(mapping[f"{PREFIX}layer_with_weights-{index}/{leaf}"]) == layer


@pytest.mark.skipif(not FULL_MANIFESTS.is_dir(), reason="needs the full reference manifests")
@pytest.mark.parametrize(
    ("backbone", "zoo_name"),
    [(f"resnet{d}", resnet_zoo(d)) for d in STAGE_BLOCKS] + [("mobilenet_v1", MOBILENET_V1)],
)
def test_map_matches_the_zoo_tf_variable_names(backbones, backbone, zoo_name):
    """Every key names the same Keras Applications layer and variable as in the zoo model."""
    manifest = json.loads((FULL_MANIFESTS / f"{zoo_name}.json").read_text())
    names = manifest["checkpoint_key_to_tf_variable_name"]
    _, mapping = backbones[backbone]
    for key, variable in mapping.items():
        tf_layer, tf_leaf = names[key + SUFFIX].removesuffix(":0").rsplit("/", 1)
        assert (_layer_of(variable), key.rsplit("/", 1)[1]) == (tf_layer, tf_leaf), key


CHANNELS = {
    "resnet50": (256, 512, 1024, 2048),
    "resnet101": (256, 512, 1024, 2048),
    "resnet152": (256, 512, 1024, 2048),
    "mobilenet_v1": (128, 256, 512, 1024),
}


@pytest.mark.parametrize("backbone", list(CHANNELS))
@pytest.mark.parametrize("size", [640, 1024])
def test_endpoints_have_strides_4_8_16_32(backbones, backbone, size):
    model, _ = backbones[backbone]
    specs = model.compute_output_spec(keras.KerasTensor((1, size, size, 3)))
    assert [tuple(s.shape) for s in specs] == [
        (1, size // stride, size // stride, channels)
        for stride, channels in zip((4, 8, 16, 32), CHANNELS[backbone], strict=True)
    ]


def test_min_level_3_gives_the_three_fpn_inputs():
    model = build_mobilenet_v1_backbone(min_level=3, input_shape=(640, 640, 3), name="m3")
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 80, 80, 256),
        (None, 40, 40, 512),
        (None, 20, 20, 1024),
    ]
    assert len(mobilenet_v1_backbone_checkpoint_map(model)) == 135


# --- numbers: the Keras layers against a hand-written forward pass -------------------------


def _randomize(model, seed: int) -> None:
    """Well-conditioned random weights: He-scaled kernels, BN statistics away from identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.8, 1.2, n).astype(np.float32))
            layer.beta.assign((rng.standard_normal(n) * 0.1).astype(np.float32))
            layer.moving_mean.assign((rng.standard_normal(n) * 0.1).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
        elif layer.weights:
            (kernel,) = layer.weights
            shape = tuple(kernel.shape)
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            fan_in = math.prod(shape[:2]) * (1 if depthwise else shape[2])
            value = rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
            kernel.assign(value.astype(np.float32))


class _Reference:
    """The API's layers as plain ``tf.nn`` ops, reading weights by Keras Applications name."""

    def __init__(self, model):
        self.model = model

    def weights(self, base: str):
        return self.model.get_layer(f"{self.model.name}.{base}").weights

    def conv(self, x, base: str, stride: int = 1, padding: str = "SAME"):
        (kernel,) = self.weights(base)
        return tf.nn.conv2d(x, kernel, stride, padding)

    def depthwise(self, x, base: str, stride: int):
        (kernel,) = self.weights(base)
        return tf.nn.depthwise_conv2d(x, kernel, [1, stride, stride, 1], "SAME")

    def bn(self, x, base: str):
        gamma, beta, mean, variance = self.weights(base)
        return (x - mean) / tf.sqrt(variance + EPSILON) * gamma + beta

    def bn_relu6(self, x, base: str):
        return tf.nn.relu6(self.bn(x, base))


def _resnet_reference(model, images, blocks):
    ref = _Reference(model)
    x = tf.pad(images, [[0, 0], [3, 3], [3, 3], [0, 0]])  # fixed padding of the 7x7 stride 2
    x = ref.bn_relu6(ref.conv(x, "conv1_conv", 2, "VALID"), "conv1_bn")
    x = tf.nn.max_pool2d(x, 3, 2, "SAME")
    outputs = []
    for stage, count in enumerate(blocks, start=2):
        for index in range(1, count + 1):
            block = f"conv{stage}_block{index}"
            stride = 2 if index == 1 and stage > 2 else 1
            shortcut = x
            if index == 1:
                shortcut = ref.bn(ref.conv(x, f"{block}_0_conv", stride), f"{block}_0_bn")
            y = ref.bn_relu6(ref.conv(x, f"{block}_1_conv", stride), f"{block}_1_bn")
            y = ref.bn_relu6(ref.conv(y, f"{block}_2_conv"), f"{block}_2_bn")
            y = ref.bn(ref.conv(y, f"{block}_3_conv"), f"{block}_3_bn")
            x = tf.nn.relu6(shortcut + y)
        outputs.append(x)
    return outputs


def _mobilenet_reference(model, images):
    ref = _Reference(model)
    x = ref.bn_relu6(ref.conv(images, "conv1", 2), "conv1_bn")
    outputs = []
    for block, (_, stride) in enumerate(BLOCKS, start=1):
        x = ref.bn_relu6(ref.depthwise(x, f"conv_dw_{block}", stride), f"conv_dw_{block}_bn")
        x = ref.bn_relu6(ref.conv(x, f"conv_pw_{block}"), f"conv_pw_{block}_bn")
        if block in (3, 5, 11, 13):
            outputs.append(x)
    return outputs


def _assert_close(actual, expected):
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        got, want = np.asarray(got), np.asarray(want)
        assert got.shape == want.shape
        scale = max(float(np.abs(want).max()), 1e-3)
        assert float(np.abs(got - want).max()) <= 1e-4 * scale + 1e-5
        assert float(want.std()) > 1e-3  # the check is not comparing two zero maps
    # the inputs are large enough that ReLU6 clips somewhere: ReLU would not pass
    assert max(float(np.asarray(want).max()) for want in expected) == 6.0


# odd, non-square sizes exercise TF's SAME padding (one more on the bottom/right) at the strides
@pytest.mark.parametrize("size", [(70, 70), (57, 96)])
def test_resnet50_computes_the_api_layers(backbones, size):
    model, _ = backbones["resnet50"]
    _randomize(model, seed=size[0])
    images = tf.random.stateless_normal((2, *size, 3), seed=(1, size[1])) * 50.0
    _assert_close(model(images, training=False), _resnet_reference(model, images, (3, 4, 6, 3)))


@pytest.mark.parametrize("size", [(70, 70), (57, 96)])
def test_mobilenet_v1_computes_the_api_layers(backbones, size):
    model, _ = backbones["mobilenet_v1"]
    _randomize(model, seed=size[0])
    # wider than the [-1, 1] of real inputs, so that ReLU6 clips
    images = tf.random.stateless_uniform((2, *size, 3), seed=(2, size[1]), minval=-5, maxval=5)
    _assert_close(model(images, training=False), _mobilenet_reference(model, images))


def test_resnet_blocks_stride_on_the_first_1x1_conv(backbones):
    """ResNet-v1 (Keras Applications layout): conv3..conv5 halve the size in block1's 1x1
    convs, the 3x3 convs keep stride 1."""
    model, _ = backbones["resnet50"]

    def strides(base: str) -> tuple[int, int]:
        return tuple(model.get_layer(f"{model.name}.{base}").strides)

    for stage in (3, 4, 5):
        assert strides(f"conv{stage}_block1_1_conv") == (2, 2)
        assert strides(f"conv{stage}_block1_0_conv") == (2, 2)
        assert strides(f"conv{stage}_block1_2_conv") == (1, 1)
    assert strides("conv2_block1_1_conv") == (1, 1)

"""MobileNetV1, the backbone of the zoo's ``ssd_mobilenet_v1_fpn_keras`` model, in Keras 3, as
the TF Object Detection API builds it.

The API takes the Keras Applications MobileNet (layer names ``conv1``, ``conv_dw_1``,
``conv_pw_1``, ... ``conv_pw_13_relu``) and swaps its layers (``keras_models/mobilenet_v1.py``);
with ``override_base_feature_extractor_hyperparams: true`` and ``use_explicit_padding: false``
(the zoo config):

- every convolution, strided ones included, uses ``same`` padding (TF's: a stride-2 3x3 conv on
  an even size pads 0 before and 1 after); the ``ZeroPadding2D`` layers of Keras Applications are
  no-ops; no convolution has a bias; depthwise convolutions have depth multiplier 1;
- activations are ReLU6; batch norm has epsilon 1e-3 and momentum 0.997 (config
  ``batch_norm``); ``freeze_batchnorm: false`` in the zoo config;
- the width multiplier (``depth_multiplier`` of the config) is applied twice, once by Keras
  Applications and once by the API's ``Conv2D``, then ``min_depth`` is the floor:
  ``max(int(int(filters * alpha) * alpha), min_depth)`` (no change at the zoo's 1.0 and 16).

The API's ``classification_backbone`` outputs ``conv_pw_3_relu`` (stride 4, 128 channels),
``conv_pw_5_relu`` (stride 8, 256), ``conv_pw_11_relu`` (stride 16, 512) and
``conv_pw_13_relu`` (stride 32, 1024); its FPN (levels 3..7) takes the last three. Inputs are
images mapped to [-1, 1] (``2 / 255 * x - 1``).
"""

from __future__ import annotations

import keras
from keras import layers

from boxtune.engines.tensorflow.zoo.resnet_v1 import CHECKPOINT_PREFIX, indexed_checkpoint_map

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.997
FIRST_FILTERS = 32  # conv1, 3x3 stride 2
# (pointwise filters, depthwise stride) of blocks 1..13
BLOCKS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip
# The block whose output is the endpoint of each level 2..5 (strides 4, 8, 16, 32)
ENDPOINT_BLOCKS = (3, 5, 11, 13)
ENDPOINT_CHANNELS = (128, 256, 512, 1024)  # at depth_multiplier 1


def filters_for(filters: int, depth_multiplier: float, min_depth: int) -> int:
    filters = int(int(filters * depth_multiplier) * depth_multiplier)
    return max(filters, min_depth) if min_depth else filters


def build_mobilenet_v1_backbone(
    *,
    depth_multiplier: float = 1.0,
    min_depth: int = 16,
    bn_momentum: float = BN_MOMENTUM,
    min_level: int = 2,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    name: str = "mobilenet_v1",
) -> keras.Model:
    """MobileNetV1: preprocessed images ``[B, H, W, 3]`` in [-1, 1] -> the endpoints for levels
    ``min_level``..5 (level ``l`` has stride ``2**l``): by default the four of the API's
    ``classification_backbone`` (``conv_pw_{3,5,11,13}_relu``); ``min_level=3`` gives just the
    three its FPN takes. Layers are named ``<name>.<Keras Applications name>``."""
    if not 2 <= min_level <= 5:
        raise ValueError(f"min_level must be in 2..5, got {min_level}")

    def layer_name(base: str) -> str:
        return f"{name}.{base}"

    def bn_relu6(x, base: str):
        x = layers.BatchNormalization(
            momentum=bn_momentum, epsilon=BN_EPSILON, name=layer_name(f"{base}_bn")
        )(x)
        return layers.ReLU(6.0, name=layer_name(f"{base}_relu"))(x)

    initializer = keras.initializers.RandomNormal(stddev=0.01)  # the config's conv initializer
    images = keras.Input(input_shape, name=f"{name}.input")
    x = layers.Conv2D(
        filters_for(FIRST_FILTERS, depth_multiplier, min_depth),
        3,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer=initializer,
        name=layer_name("conv1"),
    )(images)
    x = bn_relu6(x, "conv1")
    endpoints = []
    for block, (filters, stride) in enumerate(BLOCKS, start=1):
        x = layers.DepthwiseConv2D(
            3,
            strides=stride,
            padding="same",
            use_bias=False,
            depthwise_initializer=initializer,
            name=layer_name(f"conv_dw_{block}"),
        )(x)
        x = bn_relu6(x, f"conv_dw_{block}")
        x = layers.Conv2D(
            filters_for(filters, depth_multiplier, min_depth),
            1,
            padding="same",
            use_bias=False,
            kernel_initializer=initializer,
            name=layer_name(f"conv_pw_{block}"),
        )(x)
        x = bn_relu6(x, f"conv_pw_{block}")
        if block in ENDPOINT_BLOCKS:
            endpoints.append(x)
    return keras.Model(images, endpoints[min_level - 2 :], name=name)


def checkpoint_layer_order() -> list[str]:
    """The layers with weights in the zoo checkpoint's ``layer_with_weights-N`` order (the
    network is a chain, so it is the order of the layers)."""
    order = ["conv1", "conv1_bn"]
    for block in range(1, len(BLOCKS) + 1):
        order += [
            f"conv_dw_{block}",
            f"conv_dw_{block}_bn",
            f"conv_pw_{block}",
            f"conv_pw_{block}_bn",
        ]
    return order


def mobilenet_v1_backbone_checkpoint_map(
    model: keras.Model, *, prefix: str = CHECKPOINT_PREFIX
) -> dict[str, keras.Variable]:
    """Zoo checkpoint key (without ``/.ATTRIBUTES/VARIABLE_VALUE``) -> variable, for a model of
    :func:`build_mobilenet_v1_backbone`."""
    return indexed_checkpoint_map(model, checkpoint_layer_order(), prefix)

"""MobileNetV2 as the TF Object Detection API's ``ssd_mobilenet_v2_fpn_keras`` feature extractor
builds it (the Keras-Applications MobileNetV2 with the API's layer overrides), in Keras 3.

What the API changes against Keras Applications, and this module reproduces:

- every convolution uses ``same`` padding (the application's ``ZeroPadding2D`` + ``valid``
  before a stride-2 depthwise convolution is replaced by a no-op, ``use_explicit_padding`` is
  false in every zoo config);
- batch norm and activation come from the feature extractor's ``conv_hyperparams`` (decay
  0.997, epsilon 1e-3, ``RELU_6``);
- ``min_depth`` raises every convolution's filters except the ``expand`` ones, and the width
  multiplier also shrinks the last 1x1 convolution (``Conv_1``: 1280 filters unless ``alpha`` is
  below 1).

The outputs are the endpoints of the API's ``classification_backbone`` (``layer_4``,
``layer_7``, ``layer_14``, ``layer_19``: levels 2..5, strides 4, 8, 16, 32; for a 320 px input
80x80x24, 40x40x32, 20x20x96, 10x10x1280), equal to the reference's ``backbone/0..3``, or with
``min_level=3`` only the last three, which the FPN of the zoo models takes.

Layers are named ``<name>.<Keras-Applications layer name>`` (e.g.
``mobilenet_v2.block_2_project_BN``). The zoo checkpoint indexes them as
``classification_backbone/layer_with_weights-N``: N counts the application's layers that hold
weights, in the order the application creates them, which :func:`weighted_layer_names` rebuilds
from the block table.
"""

from __future__ import annotations

import keras
from keras import layers

# (expansion, output channels, stride) of block 0 (``expanded_conv``) ... block 16: the TF1
# feature extractor's table
from boxtune.engines.tensorflow.ssdlite_mobilenet_v2 import INVERTED_RESIDUALS

FIRST_BLOCK_FILTERS = 32
LAST_CONV_FILTERS = 1280
# The API's feature blocks layer_4, layer_7, layer_14 end at block 2, 5 and 12 (its ``add``, or
# its ``project_BN`` when the block has no residual); layer_19 is ``out_relu``.
ENDPOINT_BLOCKS = (2, 5, 12)
# The endpoints' FPN levels (log2 of their strides)
ENDPOINT_LEVELS = (2, 3, 4, 5)
BN_MOMENTUM = 0.997  # the zoo configs' batch_norm decay
BN_EPSILON = 1e-3
CHECKPOINT_PREFIX = "model/_feature_extractor/classification_backbone/"


def make_divisible(value: float, divisor: int = 8) -> int:
    """The width rounding of MobileNet (to a multiple of ``divisor``, never 10% below)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def block_prefix(block: int) -> str:
    return f"block_{block}_" if block else "expanded_conv_"


def weighted_layer_names(num_blocks: int = len(INVERTED_RESIDUALS)) -> list[str]:
    """The Keras-Applications MobileNetV2 layers that hold weights, in creation order."""
    names = ["Conv1", "bn_Conv1"]
    for block in range(num_blocks):
        prefix = block_prefix(block)
        if block:
            names += [f"{prefix}expand", f"{prefix}expand_BN"]
        names += [f"{prefix}depthwise", f"{prefix}depthwise_BN"]
        names += [f"{prefix}project", f"{prefix}project_BN"]
    return [*names, "Conv_1", "Conv_1_bn"]


def endpoint_channels(
    *, depth_multiplier: float = 1.0, min_depth: int = 16, min_level: int = 2
) -> list[int]:
    """The channels of the endpoints of levels ``min_level``..5 (what the FPN is fed)."""
    channels = [
        _filters(INVERTED_RESIDUALS[block][1], depth_multiplier, min_depth)
        for block in ENDPOINT_BLOCKS
    ]
    channels.append(_last_filters(depth_multiplier, min_depth))
    return channels[_check_min_level(min_level) - ENDPOINT_LEVELS[0] :]


def _check_min_level(min_level: int) -> int:
    if min_level not in ENDPOINT_LEVELS:
        raise ValueError(f"min_level must be in 2..5, got {min_level}")
    return min_level


def _filters(channels: int, alpha: float, min_depth: int) -> int:
    return max(make_divisible(int(channels * alpha), 8), min_depth)


def _last_filters(alpha: float, min_depth: int) -> int:
    filters = make_divisible(LAST_CONV_FILTERS * alpha, 8) if alpha < 1.0 else LAST_CONV_FILTERS
    return max(filters, min_depth)


class _Builder:
    def __init__(self, name: str, bn_momentum: float, bn_epsilon: float, initializer):
        self.name = name
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.initializer = initializer

    def layer_name(self, name: str) -> str:
        return f"{self.name}.{name}"

    def conv(self, x, filters: int, name: str, *, kernel: int = 1, stride: int = 1):
        return layers.Conv2D(
            filters,
            kernel,
            stride,
            padding="same",
            use_bias=False,
            kernel_initializer=self.initializer,
            name=self.layer_name(name),
        )(x)

    def depthwise(self, x, name: str, *, stride: int):
        return layers.DepthwiseConv2D(
            3,
            stride,
            padding="same",
            use_bias=False,
            depthwise_initializer=self.initializer,
            name=self.layer_name(name),
        )(x)

    def batch_norm(self, x, name: str):
        return layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon, name=self.layer_name(name)
        )(x)

    def relu6(self, x, name: str):
        return layers.ReLU(6.0, name=self.layer_name(name))(x)


def build_mobilenet_v2_backbone(
    *,
    depth_multiplier: float = 1.0,
    min_depth: int = 16,
    min_level: int = 2,
    bn_momentum: float = BN_MOMENTUM,
    bn_epsilon: float = BN_EPSILON,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    kernel_initializer: keras.initializers.Initializer | None = None,
    name: str = "mobilenet_v2",
) -> keras.Model:
    """Preprocessed images ``[B, H, W, 3]`` (values in [-1, 1]) -> the endpoints of levels
    ``min_level``..5 (level ``l`` has stride ``2**l``): by default the four of the API's
    ``classification_backbone`` (``layer_4``, ``layer_7``, ``layer_14``, ``layer_19``);
    ``min_level=3`` gives just the FPN's three inputs. Every layer is built either way.

    ``kernel_initializer`` defaults to the zoo configs' ``random_normal`` with stddev 0.01 (only
    used when no checkpoint is loaded)."""
    _check_min_level(min_level)
    if kernel_initializer is None:
        kernel_initializer = keras.initializers.RandomNormal(stddev=0.01)
    build = _Builder(name, bn_momentum, bn_epsilon, kernel_initializer)
    alpha = depth_multiplier
    images = keras.Input(input_shape, name=f"{name}.images")
    first = max(make_divisible(FIRST_BLOCK_FILTERS * alpha, 8), min_depth)
    x = build.conv(images, first, "Conv1", kernel=3, stride=2)
    x = build.batch_norm(x, "bn_Conv1")
    x = build.relu6(x, "Conv1_relu")
    endpoints = []
    for block, (expansion, channels, stride) in enumerate(INVERTED_RESIDUALS):
        prefix = block_prefix(block)
        inputs = x
        in_channels = int(x.shape[-1])
        if block:
            # The API's min_depth leaves the expand convolutions alone
            x = build.conv(x, expansion * in_channels, f"{prefix}expand")
            x = build.batch_norm(x, f"{prefix}expand_BN")
            x = build.relu6(x, f"{prefix}expand_relu")
        x = build.depthwise(x, f"{prefix}depthwise", stride=stride)
        x = build.batch_norm(x, f"{prefix}depthwise_BN")
        x = build.relu6(x, f"{prefix}depthwise_relu")
        pointwise = make_divisible(int(channels * alpha), 8)
        x = build.conv(x, max(pointwise, min_depth), f"{prefix}project")
        x = build.batch_norm(x, f"{prefix}project_BN")
        # As the application decides it: on its own filter count, before min_depth
        if stride == 1 and in_channels == pointwise:
            x = layers.Add(name=build.layer_name(f"{prefix}add"))([inputs, x])
        if block in ENDPOINT_BLOCKS:
            endpoints.append(x)
    x = build.conv(x, _last_filters(alpha, min_depth), "Conv_1")
    x = build.batch_norm(x, "Conv_1_bn")
    endpoints.append(build.relu6(x, "out_relu"))
    return keras.Model(images, endpoints[min_level - ENDPOINT_LEVELS[0] :], name=name)


def _leaf_names(layer: keras.layers.Layer) -> list[str]:
    """The checkpoint's leaf name of each of the layer's weights, in ``layer.weights`` order."""
    if isinstance(layer, layers.DepthwiseConv2D):
        return ["depthwise_kernel" if w.name == "kernel" else w.name for w in layer.weights]
    return [w.name for w in layer.weights]


def mobilenet_v2_backbone_checkpoint_map(
    model: keras.Model, *, prefix: str = CHECKPOINT_PREFIX
) -> dict[str, keras.Variable]:
    """Zoo checkpoint key (without ``/.ATTRIBUTES/VARIABLE_VALUE``) -> the model's variable, for
    every ``classification_backbone/layer_with_weights-N/...`` key."""
    mapping: dict[str, keras.Variable] = {}
    for index, layer_name in enumerate(weighted_layer_names()):
        layer = model.get_layer(f"{model.name}.{layer_name}")
        for leaf, variable in zip(_leaf_names(layer), layer.weights, strict=True):
            mapping[f"{prefix}layer_with_weights-{index}/{leaf}"] = variable
    _check_covers(model, mapping)
    return mapping


def _check_covers(model: keras.Model, mapping: dict[str, keras.Variable]) -> None:
    mapped = {id(v) for v in mapping.values()}
    missing = [v.path for v in model.weights if id(v) not in mapped]
    if missing or len(mapped) != len(mapping):
        raise ValueError(f"{model.name}: variables not mapped exactly once: {missing[:5]}")

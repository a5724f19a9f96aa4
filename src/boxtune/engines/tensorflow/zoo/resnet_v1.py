"""ResNet-v1 50/101/152, the backbone of the zoo's ``ssd_resnet{50,101,152}_v1_fpn_keras``
models, in Keras 3, as the TF Object Detection API builds it.

The API takes the Keras Applications ResNet (layer names ``conv1_conv``, ``conv2_block1_1_conv``,
... ``conv5_block3_out``) and swaps its layers (``keras_models/resnet_v1.py``), and with
``override_base_feature_extractor_hyperparams: true`` (every zoo config) the feature extractor's
``conv_hyperparams`` decide them:

- convolutions have no bias; their padding is ``same``, except a strided convolution with a
  kernel over 1 (only ``conv1_conv``, 7x7 stride 2), which pads 3 on every side first and is
  ``valid``; the ``ZeroPadding2D`` layers of Keras Applications are no-ops;
- the stride of a stage sits on the first 1x1 convolution of its first block (and its 1x1
  shortcut), the v1 layout of Keras Applications;
- max pooling ``pool1_pool`` is 3x3 stride 2 ``same``;
- every activation, the ``_out`` after each residual sum included, is ReLU6 (config activation
  ``RELU_6``), not ReLU;
- batch norm: epsilon 1e-3 and momentum 0.997 (config ``batch_norm``), not the 1.001e-5 of Keras
  Applications; ``freeze_batchnorm: false`` in the zoo configs, so batch norm trains with the rest;
- filters: ``max(int(filters * depth_multiplier), min_depth)`` (16 and 1.0 in the zoo: no change).

The API's ``classification_backbone`` outputs the last block of each stage: ``conv2_block3_out``
(stride 4, 256 channels), ``conv3_block{4,4,8}_out`` (stride 8, 512), ``conv4_block{6,23,36}_out``
(stride 16, 1024) and ``conv5_block3_out`` (stride 32, 2048); its FPN (levels 3..7) takes the
last three. Inputs are images minus the channel means ``[123.68, 116.779, 103.939]``.
"""

from __future__ import annotations

import keras
from keras import layers

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.997
# Blocks per stage (conv2..conv5) and the bottleneck width of each stage (outputs are 4x).
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_FILTERS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
ENDPOINT_CHANNELS = (256, 512, 1024, 2048)  # conv2..conv5 outputs, at depth_multiplier 1
CHECKPOINT_PREFIX = "model/_feature_extractor/classification_backbone"


def _check_depth(depth: int) -> tuple[int, ...]:
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"ResNet-v1 depth must be one of {sorted(STAGE_BLOCKS)}, got {depth}")
    return STAGE_BLOCKS[depth]


def endpoint_names(depth: int) -> list[str]:
    """The Keras Applications names of the last block of each stage (conv2..conv5)."""
    blocks = _check_depth(depth)
    return [f"conv{stage}_block{count}_out" for stage, count in enumerate(blocks, start=2)]


class _Builder:
    def __init__(self, name: str, depth_multiplier: float, min_depth: int, bn_momentum: float):
        self.name = name
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.bn_momentum = bn_momentum

    def layer_name(self, base: str) -> str:
        return f"{self.name}.{base}"

    def filters(self, filters: int) -> int:
        return max(int(filters * self.depth_multiplier), self.min_depth)

    def conv(self, x, filters: int, kernel: int, base: str, *, stride: int = 1):
        padding = "same"
        if stride > 1 and kernel > 1:
            # the API's fixed padding: pad (kernel - 1) split begin/end, then a valid conv
            total = kernel - 1
            x = layers.ZeroPadding2D(
                ((total // 2, total - total // 2),) * 2, name=self.layer_name(f"{base}_pad")
            )(x)
            padding = "valid"
        return layers.Conv2D(
            self.filters(filters),
            kernel,
            strides=stride,
            padding=padding,
            use_bias=False,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.03),
            name=self.layer_name(base),
        )(x)

    def batch_norm(self, x, base: str):
        return layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=BN_EPSILON, name=self.layer_name(base)
        )(x)

    def relu6(self, x, base: str):
        return layers.ReLU(6.0, name=self.layer_name(base))(x)

    def block(self, x, filters: int, block: str, *, stride: int, conv_shortcut: bool):
        """One bottleneck: 1x1 (strided) -> 3x3 -> 1x1 (4x filters), plus the shortcut."""
        if conv_shortcut:
            shortcut = self.conv(x, 4 * filters, 1, f"{block}_0_conv", stride=stride)
            shortcut = self.batch_norm(shortcut, f"{block}_0_bn")
        else:
            shortcut = x
        x = self.conv(x, filters, 1, f"{block}_1_conv", stride=stride)
        x = self.relu6(self.batch_norm(x, f"{block}_1_bn"), f"{block}_1_relu")
        x = self.conv(x, filters, 3, f"{block}_2_conv")
        x = self.relu6(self.batch_norm(x, f"{block}_2_bn"), f"{block}_2_relu")
        x = self.conv(x, 4 * filters, 1, f"{block}_3_conv")
        x = self.batch_norm(x, f"{block}_3_bn")
        x = layers.Add(name=self.layer_name(f"{block}_add"))([shortcut, x])
        return self.relu6(x, f"{block}_out")

    def network(self, images, blocks: tuple[int, ...]) -> list:
        x = self.conv(images, 64, 7, "conv1_conv", stride=2)
        x = self.relu6(self.batch_norm(x, "conv1_bn"), "conv1_relu")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=self.layer_name("pool1_pool"))(x)
        endpoints = []
        for stage, (count, filters, stride) in enumerate(
            zip(blocks, STAGE_FILTERS, STAGE_STRIDES, strict=True), start=2
        ):
            for index in range(1, count + 1):
                x = self.block(
                    x,
                    filters,
                    f"conv{stage}_block{index}",
                    stride=stride if index == 1 else 1,
                    conv_shortcut=index == 1,
                )
            endpoints.append(x)
        return endpoints


def build_resnet_v1_backbone(
    *,
    depth: int,
    depth_multiplier: float = 1.0,
    min_depth: int = 16,
    bn_momentum: float = BN_MOMENTUM,
    min_level: int = 2,
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    name: str | None = None,
) -> keras.Model:
    """ResNet-v1-``depth``: preprocessed images ``[B, H, W, 3]`` (channel means subtracted) ->
    the stage outputs for levels ``min_level``..5 (level ``l`` has stride ``2**l``): by default
    the four endpoints of the API's ``classification_backbone`` (conv2..conv5); ``min_level=3``
    gives just the three its FPN takes. Layers are named ``<name>.<Keras Applications name>``."""
    blocks = _check_depth(depth)
    if not 2 <= min_level <= 5:
        raise ValueError(f"min_level must be in 2..5, got {min_level}")
    name = name or f"resnet{depth}_v1"
    builder = _Builder(name, depth_multiplier, min_depth, bn_momentum)
    images = keras.Input(input_shape, name=f"{name}.input")
    endpoints = builder.network(images, blocks)
    return keras.Model(images, endpoints[min_level - 2 :], name=name)


def checkpoint_layer_order(depth: int) -> list[str]:
    """The Keras Applications names of the layers with weights, in the order the zoo checkpoint
    numbers them (``layer_with_weights-N``): tf.keras lists a functional model's layers by
    decreasing depth from the outputs, ties in creation order. So in a stage's first block the
    1x1 shortcut (created first) and the third 1x1 conv sit at one depth, then their two batch
    norms: ``_1_conv, _1_bn, _2_conv, _2_bn, _0_conv, _3_conv, _0_bn, _3_bn``."""
    order = ["conv1_conv", "conv1_bn"]
    for stage, count in enumerate(_check_depth(depth), start=2):
        for index in range(1, count + 1):
            block = f"conv{stage}_block{index}"
            order += [f"{block}_1_conv", f"{block}_1_bn", f"{block}_2_conv", f"{block}_2_bn"]
            if index == 1:
                order += [f"{block}_0_conv", f"{block}_3_conv", f"{block}_0_bn", f"{block}_3_bn"]
            else:
                order += [f"{block}_3_conv", f"{block}_3_bn"]
    return order


def _layer_variables(layer) -> dict[str, keras.Variable]:
    if isinstance(layer, layers.BatchNormalization):
        return {
            "gamma": layer.gamma,
            "beta": layer.beta,
            "moving_mean": layer.moving_mean,
            "moving_variance": layer.moving_variance,
        }
    if isinstance(layer, layers.DepthwiseConv2D):
        return {"depthwise_kernel": layer.kernel}
    if isinstance(layer, layers.Conv2D):
        return {"kernel": layer.kernel}
    raise TypeError(f"no checkpoint rule for layer {layer.name} ({type(layer).__name__})")


def indexed_checkpoint_map(
    model: keras.Model, order: list[str], prefix: str
) -> dict[str, keras.Variable]:
    """``<prefix>/layer_with_weights-N/<leaf>`` -> variable, for the layers ``<model>.<order[N]>``;
    checks that these are all the model's layers with weights and variables."""
    layer_prefix = f"{model.name}."
    mapping: dict[str, keras.Variable] = {}
    for index, base in enumerate(order):
        layer = model.get_layer(layer_prefix + base)
        for leaf, variable in _layer_variables(layer).items():
            mapping[f"{prefix}/layer_with_weights-{index}/{leaf}"] = variable
    mapped = {id(variable) for variable in mapping.values()}
    missing = [v.path for v in model.variables if id(v) not in mapped]
    if missing or len(mapped) != len(model.variables):
        raise ValueError(f"{model.name}: variables without a checkpoint key: {missing}")
    return mapping


def resnet_v1_backbone_checkpoint_map(
    model: keras.Model, *, depth: int | None = None, prefix: str = CHECKPOINT_PREFIX
) -> dict[str, keras.Variable]:
    """Zoo checkpoint key (without ``/.ATTRIBUTES/VARIABLE_VALUE``) -> variable, for a model of
    :func:`build_resnet_v1_backbone` (its depth is read from its layers unless given)."""
    if depth is None:
        depth = _depth_of(model)
    return indexed_checkpoint_map(model, checkpoint_layer_order(depth), prefix)


def _depth_of(model: keras.Model) -> int:
    names = {layer.name for layer in model.layers}
    for depth in sorted(STAGE_BLOCKS, reverse=True):
        if f"{model.name}.{endpoint_names(depth)[2]}" in names:
            return depth
    raise ValueError(f"{model.name} is not a ResNet-v1 backbone of this module")

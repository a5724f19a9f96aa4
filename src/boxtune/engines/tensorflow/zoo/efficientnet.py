"""The EfficientNet backbone of the TF Object Detection API's EfficientDet feature extractors
(``ssd_efficientnet-b{0..7}_bifpn_keras``), in Keras 3.

The API builds the classification network of ``official/.../efficientnet_model.py``
(``EfficientNet.from_name(version, overrides={'rescale_input': False})``), keeps it whole as
``classification_backbone`` and cuts from it a sub-model ``_efficientnet`` whose outputs are the
BiFPN's input levels. Its zoo checkpoints therefore hold two groups of keys:

- ``model/_feature_extractor/_efficientnet/layer_with_weights-<i>/...``: every layer up to the
  last tapped endpoint (``stack_6/block_0/project_bn``), ``i`` counting weighted layers in the
  order the network creates them;
- ``model/_feature_extractor/classification_backbone/layer_with_weights-<i>/...``: the rest of
  the classifier (the blocks after ``stack_6/block_0``, the 1x1 top conv + BN and the 1000-way
  ``logits``), same count continued. Inference never runs them.

:func:`build_efficientnet_backbone` returns a functional model whose outputs are the tapped
endpoints. The unused rest of the classifier is a functional model of its own, held by an
identity layer on the last endpoint, so that the backbone owns (counts, saves, restores) those
variables as the API's model does, at no compute cost.

Every layer is named ``<name>.<the API's Keras layer name with / written as .>``, e.g.
``efficientnet.stack_5.block_2.depthwise_bn``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import keras
from keras import layers

BN_MOMENTUM = 0.99  # efficientnet_model.ModelConfig.bn_momentum
BN_EPSILON = 1e-3  # efficientnet_model.ModelConfig.bn_epsilon
DEPTH_DIVISOR = 8
STEM_FILTERS = 32
TOP_FILTERS = 1280
NUM_CLASSES = 1000
DROP_CONNECT_RATE = 0.2
SE_RATIO = 0.25


@dataclass(frozen=True)
class StackConfig:
    """One stack of MBConv blocks of EfficientNet-B0 (before width/depth scaling)."""

    input_filters: int
    output_filters: int
    kernel_size: int
    num_repeat: int
    expand_ratio: int
    stride: int


B0_STACKS = (
    StackConfig(32, 16, 3, 1, 1, 1),
    StackConfig(16, 24, 3, 2, 6, 2),
    StackConfig(24, 40, 5, 2, 6, 2),
    StackConfig(40, 80, 3, 3, 6, 2),
    StackConfig(80, 112, 5, 3, 6, 1),
    StackConfig(112, 192, 5, 4, 6, 2),
    StackConfig(192, 320, 3, 1, 6, 1),
)

# variant -> (width coefficient, depth coefficient, classifier dropout rate)
VARIANTS = {
    "b0": (1.0, 1.0, 0.2),
    "b1": (1.0, 1.1, 0.2),
    "b2": (1.1, 1.2, 0.3),
    "b3": (1.2, 1.4, 0.3),
    "b4": (1.4, 1.8, 0.4),
    "b5": (1.6, 2.2, 0.4),
    "b6": (1.8, 2.6, 0.5),
    "b7": (2.0, 3.1, 0.5),
}

# ssd_efficientnet_bifpn_feature_extractor._EFFICIENTNET_LEVEL_ENDPOINTS: pyramid level -> layer
LEVEL_ENDPOINTS = {
    1: "stack_0/block_0/project_bn",
    2: "stack_1/block_1/add",
    3: "stack_2/block_1/add",
    4: "stack_4/block_2/add",
    5: "stack_6/block_0/project_bn",
}
MAX_ENDPOINT_LEVEL = max(LEVEL_ENDPOINTS)

# The weighted layers of one MBConv block, in the order the network creates them
BLOCK_WEIGHTED_LAYERS = (
    "expand_conv2d",
    "expand_bn",
    "depthwise_conv2d",
    "depthwise_bn",
    "se_reduce_conv2d",
    "se_expand_conv2d",
    "project_conv2d",
    "project_bn",
)
STEM_WEIGHTED_LAYERS = ("stem_conv2d", "stem_bn")
TOP_WEIGHTED_LAYERS = ("top_conv2d", "top_bn", "logits")

BACKBONE_PREFIX = "model/_feature_extractor/_efficientnet"
CLASSIFIER_PREFIX = "model/_feature_extractor/classification_backbone"
CLASSIFICATION_TOP = "classification_top"  # the identity layer that owns the unused classifier
CLASSIFICATION_HEAD = "classification_head"  # the functional model it owns

# efficientnet_model.CONV_KERNEL_INITIALIZER / DENSE_KERNEL_INITIALIZER ("normal" is truncated)
_CONV_INITIALIZER = {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}
_DENSE_INITIALIZER = {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}


def round_filters(filters: int, width_coefficient: float) -> int:
    """efficientnet_model.round_filters: scale, round to a multiple of 8, never down >10%."""
    if not width_coefficient:
        return filters
    scaled = filters * width_coefficient
    rounded = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += DEPTH_DIVISOR
    return int(rounded)


def round_repeats(repeats: int, depth_coefficient: float) -> int:
    return math.ceil(depth_coefficient * repeats)


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block after scaling: ``stack_<stack>/block_<block>``."""

    stack: int
    block: int
    input_filters: int
    output_filters: int
    kernel_size: int
    expand_ratio: int
    stride: int
    drop_connect_rate: float

    @property
    def prefix(self) -> str:
        return f"stack_{self.stack}/block_{self.block}/"

    @property
    def filters(self) -> int:
        return self.input_filters * self.expand_ratio

    @property
    def se_filters(self) -> int:
        return max(1, int(self.input_filters * SE_RATIO))

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.input_filters == self.output_filters


def block_specs(variant: str) -> list[BlockSpec]:
    """Every block of the variant, in network order (efficientnet_model.efficientnet)."""
    width, depth, _ = _variant(variant)
    stacks = [
        (
            stack,
            round_filters(config.input_filters, width),
            round_filters(config.output_filters, width),
            round_repeats(config.num_repeat, depth),
        )
        for stack, config in enumerate(B0_STACKS)
    ]
    total = sum(repeats for *_, repeats in stacks)
    specs: list[BlockSpec] = []
    for stack, input_filters, output_filters, repeats in stacks:
        config = B0_STACKS[stack]
        for block in range(repeats):
            specs.append(
                BlockSpec(
                    stack=stack,
                    block=block,
                    input_filters=input_filters if block == 0 else output_filters,
                    output_filters=output_filters,
                    kernel_size=config.kernel_size,
                    expand_ratio=config.expand_ratio,
                    stride=config.stride if block == 0 else 1,
                    drop_connect_rate=DROP_CONNECT_RATE * len(specs) / total,
                )
            )
    return specs


def endpoint_channels(variant: str, *, min_level: int = 3) -> list[int]:
    """Channels of the tapped endpoints (the BiFPN's input levels min_level..5)."""
    specs = {spec.prefix: spec for spec in block_specs(variant)}
    channels = []
    for level in range(min_level, MAX_ENDPOINT_LEVEL + 1):
        stack_block = LEVEL_ENDPOINTS[level].rsplit("/", 1)[0] + "/"
        channels.append(specs[stack_block].output_filters)
    return channels


def _variant(variant: str) -> tuple[float, float, float]:
    key = variant.lower().removeprefix("efficientnet-")
    if key not in VARIANTS:
        raise ValueError(f"unknown EfficientNet variant {variant!r}; one of {sorted(VARIANTS)}")
    return VARIANTS[key]


def _swish(x, name: str):
    # efficientnet_model's 'simple_swish': x * sigmoid(x)
    return layers.Activation("swish", name=name)(x)


class _Builder:
    def __init__(self, name: str, bn_momentum: float, bn_epsilon: float):
        self.name = name
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.tensors: dict[str, object] = {}  # the API's layer name -> its output

    def layer_name(self, tf_name: str) -> str:
        return f"{self.name}.{tf_name.replace('/', '.')}"

    def keep(self, tf_name: str, x):
        self.tensors[tf_name] = x
        return x

    def conv_block(
        self,
        x,
        filters: int | None,
        tf_name: str,
        *,
        kernel_size: int = 1,
        stride: int = 1,
        batch_norm: bool = True,
        use_bias: bool = False,
        activation: str | None = None,
        depthwise: bool = False,
    ):
        """efficientnet_model.conv2d_block: conv ('same'), then BN, then the activation."""
        initializer = keras.initializers.VarianceScaling(**_CONV_INITIALIZER)
        if depthwise:
            conv = layers.DepthwiseConv2D(
                kernel_size,
                stride,
                padding="same",
                use_bias=use_bias,
                depthwise_initializer=initializer,
                name=self.layer_name(f"{tf_name}_conv2d"),
            )
        else:
            conv = layers.Conv2D(
                filters,
                kernel_size,
                stride,
                padding="same",
                use_bias=use_bias,
                kernel_initializer=initializer,
                name=self.layer_name(f"{tf_name}_conv2d"),
            )
        x = self.keep(f"{tf_name}_conv2d", conv(x))
        if batch_norm:
            x = layers.BatchNormalization(
                momentum=self.bn_momentum,
                epsilon=self.bn_epsilon,
                name=self.layer_name(f"{tf_name}_bn"),
            )(x)
            x = self.keep(f"{tf_name}_bn", x)
        if activation == "swish":
            x = _swish(x, self.layer_name(f"{tf_name}_activation"))
        elif activation is not None:
            x = layers.Activation(activation, name=self.layer_name(f"{tf_name}_activation"))(x)
        return x

    def mb_conv_block(self, inputs, spec: BlockSpec):
        """efficientnet_model.mb_conv_block (depthwise, not fused, with squeeze-excitation)."""
        prefix = spec.prefix
        x = inputs
        if spec.expand_ratio != 1:
            x = self.conv_block(x, spec.filters, prefix + "expand", activation="swish")
        x = self.conv_block(
            x,
            None,
            prefix + "depthwise",
            kernel_size=spec.kernel_size,
            stride=spec.stride,
            activation="swish",
            depthwise=True,
        )
        se = layers.GlobalAveragePooling2D(name=self.layer_name(prefix + "se_squeeze"))(x)
        se = layers.Reshape((1, 1, spec.filters), name=self.layer_name(prefix + "se_reshape"))(se)
        se = self.conv_block(
            se,
            spec.se_filters,
            prefix + "se_reduce",
            batch_norm=False,
            use_bias=True,
            activation="swish",
        )
        se = self.conv_block(
            se,
            spec.filters,
            prefix + "se_expand",
            batch_norm=False,
            use_bias=True,
            activation="sigmoid",
        )
        x = layers.Multiply(name=self.layer_name(prefix + "se_excite"))([x, se])
        x = self.conv_block(x, spec.output_filters, prefix + "project")
        x = layers.Identity(name=self.layer_name(prefix + "id"))(x)
        if spec.has_skip:
            if spec.drop_connect_rate > 0:
                # drop-connect: a whole-sample dropout, active in training only
                x = layers.Dropout(
                    spec.drop_connect_rate,
                    noise_shape=(None, 1, 1, 1),
                    name=self.layer_name(prefix + "drop"),
                )(x)
            x = layers.Add(name=self.layer_name(prefix + "add"))([x, inputs])
            x = self.keep(prefix + "add", x)
        return x

    def classifier_top(self, x, filters: int, dropout_rate: float):
        x = self.conv_block(x, filters, "top", activation="swish")
        x = layers.GlobalAveragePooling2D(name=self.layer_name("top_pool"))(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name=self.layer_name("top_dropout"))(x)
        x = layers.Dense(
            NUM_CLASSES,
            kernel_initializer=keras.initializers.VarianceScaling(**_DENSE_INITIALIZER),
            name=self.layer_name("logits"),
        )(x)
        return layers.Activation("softmax", name=self.layer_name("probs"))(x)


@keras.saving.register_keras_serializable(package="boxtune.zoo")
class ClassificationTop(keras.layers.Layer):
    """Identity on its input; owns the classifier's unused rest (a functional model) so that
    its variables belong to the backbone, as in the API's checkpoint, without being run."""

    def __init__(self, head: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.head = head

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "head": keras.saving.serialize_keras_object(self.head)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls(**config)


def build_efficientnet_backbone(
    *,
    variant: str,
    min_level: int = 3,
    image_size: int | None = None,
    bn_momentum: float = BN_MOMENTUM,
    bn_epsilon: float = BN_EPSILON,
    name: str = "efficientnet",
) -> keras.Model:
    """EfficientNet-``variant`` as the EfficientDet feature extractor uses it: preprocessed
    float32 images ``[B, H, W, 3]`` -> the endpoints of levels ``min_level``..5 (for
    ``min_level=3``: ``stack_2/block_1/add``, ``stack_4/block_2/add``,
    ``stack_6/block_0/project_bn``, strides 8, 16, 32). The model also owns the unused rest of
    the classifier (see the module docstring); no input rescaling (``rescale_input=False``)."""
    if not 1 <= min_level <= MAX_ENDPOINT_LEVEL:
        raise ValueError(f"min_level must be in 1..{MAX_ENDPOINT_LEVEL}, got {min_level}")
    width, _, dropout_rate = _variant(variant)
    builder = _Builder(name, bn_momentum, bn_epsilon)
    images = keras.Input((image_size, image_size, 3), name=f"{name}.images")
    x = builder.conv_block(
        images,
        round_filters(STEM_FILTERS, width),
        "stem",
        kernel_size=3,
        stride=2,
        activation="swish",
    )
    specs = block_specs(variant)
    last_tap = LEVEL_ENDPOINTS[MAX_ENDPOINT_LEVEL].rsplit("/", 1)[0] + "/"
    cut = next(i for i, spec in enumerate(specs) if spec.prefix == last_tap) + 1
    for spec in specs[:cut]:
        x = builder.mb_conv_block(x, spec)

    # The rest of the classifier, from the last tapped block's output
    head_input = keras.Input((None, None, x.shape[-1]), name=f"{name}.head_input")
    y = head_input
    for spec in specs[cut:]:
        y = builder.mb_conv_block(y, spec)
    y = builder.classifier_top(y, round_filters(TOP_FILTERS, width), dropout_rate)
    head = keras.Model(head_input, y, name=f"{name}.{CLASSIFICATION_HEAD}")

    outputs = [
        builder.tensors[LEVEL_ENDPOINTS[level]]
        for level in range(min_level, MAX_ENDPOINT_LEVEL + 1)
    ]
    outputs[-1] = ClassificationTop(head, name=f"{name}.{CLASSIFICATION_TOP}")(outputs[-1])
    return keras.Model(images, outputs, name=name)


def _order_key(tf_name: str) -> tuple[int, int, int, int]:
    """Creation order of the network's weighted layers (the checkpoint's layer_with_weights)."""
    if tf_name in STEM_WEIGHTED_LAYERS:
        return (0, 0, 0, STEM_WEIGHTED_LAYERS.index(tf_name))
    if tf_name in TOP_WEIGHTED_LAYERS:
        return (2, 0, 0, TOP_WEIGHTED_LAYERS.index(tf_name))
    match = re.fullmatch(r"stack_(\d+)/block_(\d+)/(\w+)", tf_name)
    if match is None or match.group(3) not in BLOCK_WEIGHTED_LAYERS:
        raise ValueError(f"not a weighted EfficientNet layer: {tf_name!r}")
    stack, block, op = match.groups()
    return (1, int(stack), int(block), BLOCK_WEIGHTED_LAYERS.index(op))


def _leaf(layer: keras.layers.Layer, variable) -> str:
    """The checkpoint's attribute name of one of the layer's variables (tf.keras names)."""
    if isinstance(layer, layers.DepthwiseConv2D) and variable.name == "kernel":
        return "depthwise_kernel"
    return variable.name


def efficientnet_backbone_checkpoint_map(model: keras.Model) -> dict[str, keras.Variable]:
    """Zoo checkpoint key (without ``/.ATTRIBUTES/VARIABLE_VALUE``) -> variable, for every
    variable of a model from :func:`build_efficientnet_backbone`: the weighted layers numbered
    in creation order; those on the path to the endpoints under ``_efficientnet/``, the unused
    classifier's under ``classification_backbone/``."""
    prefix = model.name + "."
    head = model.get_layer(prefix + CLASSIFICATION_TOP).head
    weighted = [
        (layer, BACKBONE_PREFIX)
        for layer in model.layers
        if layer.weights and not isinstance(layer, ClassificationTop)
    ]
    weighted += [(layer, CLASSIFIER_PREFIX) for layer in head.layers if layer.weights]
    named = []
    for layer, group in weighted:
        if not layer.name.startswith(prefix):
            raise ValueError(f"layer {layer.name!r} lacks the model's prefix {prefix!r}")
        tf_name = layer.name[len(prefix) :].replace(".", "/")
        named.append((_order_key(tf_name), layer, group))
    named.sort(key=lambda item: item[0])
    mapping: dict[str, keras.Variable] = {}
    for index, (_, layer, group) in enumerate(named):
        for variable in layer.weights:
            mapping[f"{group}/layer_with_weights-{index}/{_leaf(layer, variable)}"] = variable
    if len(mapping) != len(model.weights):
        raise AssertionError(f"{len(mapping)} keys for {len(model.weights)} variables")
    return mapping

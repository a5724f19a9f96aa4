"""The FPN neck of the TF Object Detection API's SSD FPN feature extractors
(``ssd_mobilenet_v2_fpn_keras``, ``ssd_mobilenet_v1_fpn_keras``, ``ssd_resnet*_v1_fpn_keras``),
in Keras 3: ``KerasFpnTopDownFeatureMaps`` plus the extractor's stride-2 coarse layers.

For inputs ``C_min..C_top`` (the backbone endpoints of levels ``min_level..top``, ``top =
min_level + len(inputs) - 1``, 5 for every zoo model):

- ``P_top = projection_n(C_top)`` (1x1 conv with bias, no batch norm, no activation);
- going down, ``P_l = smoothing_l(upsample2x(P_{l+1}) + projection_l(C_l))``, where the
  upsampling is nearest-neighbour and takes the *smoothed* map of the level above (as the Keras
  API does; its older slim code took the sum before smoothing), and ``smoothing`` is a 3x3 conv
  (a separable conv with ``use_depthwise``) without bias + batch norm + ReLU6;
- above ``top``, each level is a stride-2 3x3 conv (separable with ``use_depthwise``) + batch
  norm + ReLU6 of the level below, starting from ``P_top``.

All convolutions use ``same`` padding (``use_explicit_padding`` is false in every zoo config).

The zoo checkpoint holds them under ``_fpn_features_generator/`` (``top_layers/0``,
``residual_blocks/i/0``, ``conv_layers/i/{0,1}``, ``i`` counting from the level below ``top``
downwards) and ``_coarse_feature_layers/j/{0,1}`` (``j`` counting upwards from ``top + 1``).
Layers are named after the API's (``<name>.top_down.projection_3``,
``<name>.top_down.smoothing_1_depthwise_conv``, ``<name>.bottom_up_6_batchnorm``...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
from keras import layers

BN_MOMENTUM = 0.997  # the zoo configs' batch_norm decay
BN_EPSILON = 1e-3
CHECKPOINT_PREFIX = "model/_feature_extractor/"


@dataclass(frozen=True)
class _Settings:
    depth: int
    use_depthwise: bool
    bn_momentum: float
    bn_epsilon: float
    initializer: keras.initializers.Initializer


class _Names:
    def __init__(self, name: str, use_depthwise: bool):
        self.name = name
        self.conv_suffix = "_depthwise_conv" if use_depthwise else "_conv"

    def projection(self, number: int) -> str:
        return f"{self.name}.top_down.projection_{number}"

    def upsampling(self, number: int) -> str:
        return f"{self.name}.top_down.nearest_neighbor_upsampling_{number}"

    def add(self, number: int) -> str:
        return f"{self.name}.top_down.add_{number}"

    def smoothing(self, number: int) -> str:
        return f"{self.name}.top_down.smoothing_{number}"

    @property
    def coarse_prefix(self) -> str:
        return f"{self.name}.bottom_up_"

    def coarse(self, level: int) -> str:
        return f"{self.coarse_prefix}{level}"


def _conv_block(x, settings: _Settings, *, stride: int, scope: str, conv_suffix: str):
    """The API's ``create_conv_block``: 3x3 conv (no bias) + batch norm + ReLU6."""
    common = {"padding": "same", "strides": stride, "use_bias": False, "name": scope + conv_suffix}
    if settings.use_depthwise:
        conv = layers.SeparableConv2D(
            settings.depth,
            3,
            depth_multiplier=1,
            depthwise_initializer=settings.initializer,
            pointwise_initializer=settings.initializer,
            **common,
        )
    else:
        conv = layers.Conv2D(settings.depth, 3, kernel_initializer=settings.initializer, **common)
    x = conv(x)
    x = layers.BatchNormalization(
        momentum=settings.bn_momentum, epsilon=settings.bn_epsilon, name=f"{scope}_batchnorm"
    )(x)
    return layers.ReLU(6.0, name=scope)(x)


def build_fpn(
    *,
    input_channels: Sequence[int],
    min_level: int = 3,
    max_level: int = 7,
    depth: int,
    use_depthwise: bool,
    bn_momentum: float = BN_MOMENTUM,
    bn_epsilon: float = BN_EPSILON,
    kernel_initializer: keras.initializers.Initializer | None = None,
    name: str = "fpn",
) -> keras.Model:
    """The backbone endpoints of levels ``min_level, min_level + 1, ...`` (one input per entry of
    ``input_channels``, spatial size halving from one to the next) -> the feature maps of levels
    ``min_level..max_level`` (``depth`` channels each).

    The zoo extractors' four endpoints are levels 2..5, so with ``min_level=3`` pass
    ``endpoints[1:]``: channels ``[32, 96, 1280]`` (MobileNetV2), ``[256, 512, 1024]``
    (MobileNetV1), ``[512, 1024, 2048]`` (ResNet-50/101/152 v1). ``depth`` is the extractor's
    ``max(int(additional_layer_depth * depth_multiplier), min_depth)``: 128 for the fpnlite
    models, 256 for the others. ``kernel_initializer`` defaults to ``random_normal`` with
    stddev 0.01 (the MobileNet configs; the ResNet ones use ``truncated_normal`` 0.03)."""
    input_channels = [int(c) for c in input_channels]
    if not input_channels:
        raise ValueError("build_fpn needs at least one input")
    num_levels = len(input_channels)
    top = min_level + num_levels - 1
    if top > max_level:
        raise ValueError(f"{num_levels} inputs from level {min_level} exceed level {max_level}")
    if kernel_initializer is None:
        kernel_initializer = keras.initializers.RandomNormal(stddev=0.01)
    settings = _Settings(depth, use_depthwise, bn_momentum, bn_epsilon, kernel_initializer)
    names = _Names(name, use_depthwise)
    inputs = [
        keras.Input((None, None, channels), name=f"{name}.level_{min_level + i}")
        for i, channels in enumerate(input_channels)
    ]

    def projection(x, number: int):
        return layers.Conv2D(
            depth,
            1,
            padding="same",
            use_bias=True,
            kernel_initializer=kernel_initializer,
            name=names.projection(number),
        )(x)

    # The API numbers projection_k / smoothing_k by input (k = 1 for the lowest level)
    top_down = projection(inputs[-1], num_levels)
    outputs = [top_down]
    for index in reversed(range(num_levels - 1)):
        number = index + 1
        residual = projection(inputs[index], number)
        upsampling = layers.UpSampling2D(2, interpolation="nearest", name=names.upsampling(number))
        top_down = layers.Add(name=names.add(number))([upsampling(top_down), residual])
        top_down = _conv_block(
            top_down,
            settings,
            stride=1,
            scope=names.smoothing(number),
            conv_suffix=names.conv_suffix,
        )
        outputs.insert(0, top_down)
    x = outputs[-1]  # the top level's map
    for level in range(top + 1, max_level + 1):
        x = _conv_block(
            x, settings, stride=2, scope=names.coarse(level), conv_suffix=names.conv_suffix
        )
        outputs.append(x)
    return keras.Model(inputs, outputs, name=name)


def _leaves(layer: keras.layers.Layer) -> dict[str, keras.Variable]:
    return {w.name: w for w in layer.weights}


def _add_block(mapping: dict, key: str, conv: keras.layers.Layer, batch_norm) -> None:
    for leaf, variable in _leaves(conv).items():
        mapping[f"{key}/0/{leaf}"] = variable
    for leaf, variable in _leaves(batch_norm).items():
        mapping[f"{key}/1/{leaf}"] = variable


def fpn_checkpoint_map(
    model: keras.Model, *, prefix: str = CHECKPOINT_PREFIX
) -> dict[str, keras.Variable]:
    """Zoo checkpoint key (without ``/.ATTRIBUTES/VARIABLE_VALUE``) -> the model's variable, for
    every key under ``_fpn_features_generator/`` and ``_coarse_feature_layers/``."""
    num_levels = len(model.inputs)
    num_coarse = len(model.outputs) - num_levels
    use_depthwise = any(isinstance(layer, layers.SeparableConv2D) for layer in model.layers)
    names = _Names(model.name, use_depthwise)
    generator = f"{prefix}_fpn_features_generator"
    mapping: dict[str, keras.Variable] = {}
    for leaf, variable in _leaves(model.get_layer(names.projection(num_levels))).items():
        mapping[f"{generator}/top_layers/0/{leaf}"] = variable
    for block, index in enumerate(reversed(range(num_levels - 1))):
        number = index + 1
        for leaf, variable in _leaves(model.get_layer(names.projection(number))).items():
            mapping[f"{generator}/residual_blocks/{block}/0/{leaf}"] = variable
        scope = names.smoothing(number)
        _add_block(
            mapping,
            f"{generator}/conv_layers/{block}",
            model.get_layer(scope + names.conv_suffix),
            model.get_layer(f"{scope}_batchnorm"),
        )
    # The coarse layers' names carry their levels: sort them upwards
    start, suffix = names.coarse_prefix, "_batchnorm"
    levels = sorted(
        int(layer.name[len(start) : -len(suffix)])
        for layer in model.layers
        if layer.name.startswith(start) and layer.name.endswith(suffix)
    )
    if len(levels) != num_coarse:
        raise ValueError(f"{model.name}: {len(levels)} coarse layers for {num_coarse} outputs")
    for j, level in enumerate(levels):
        scope = names.coarse(level)
        _add_block(
            mapping,
            f"{prefix}_coarse_feature_layers/{j}",
            model.get_layer(scope + names.conv_suffix),
            model.get_layer(f"{scope}_batchnorm"),
        )
    mapped = {id(v) for v in mapping.values()}
    missing = [v.path for v in model.weights if id(v) not in mapped]
    if missing or len(mapped) != len(mapping):
        raise ValueError(f"{model.name}: variables not mapped exactly once: {missing[:5]}")
    return mapping

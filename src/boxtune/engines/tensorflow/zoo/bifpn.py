"""The BiFPN of the TF Object Detection API's EfficientDet feature extractors
(``bidirectional_feature_pyramid_generators.KerasBiFpnFeatureMaps`` with
``fast_attention``), in Keras 3.

The network is a list of nodes, each computed from earlier ones:

- extra base levels ``0_up_lvl_<l>`` for l above the backbone's last level, each from the level
  below (no combine, no post-combine);
- per iteration ``i`` (from 1): a top-down pass ``i_dn_lvl_<max-1>``..``i_dn_lvl_<min>`` and a
  bottom-up pass ``i_up_lvl_<min+1>``..``i_up_lvl_<max>``.

Each input of a node is resampled to the node's level: a 1x1 conv + BN (no activation) first if
the input comes from the backbone (the API applies it when the channel counts differ, and a
backbone level carries no channel count), then a 3x3 stride-2 'same' max-pool per level down, or
nearest-neighbour upsampling up. Nodes with several inputs combine them with fast attention
(``sum_i relu(w_i) x_i / (sum_i relu(w_i) + 1e-4)``), then apply swish, a 3x3 separable conv
(with bias) and BN. The outputs are the last ``max - min + 1`` nodes (levels min..max).

Checkpoint keys, under ``model/_feature_extractor/_bifpn_stage/``:
``node_input_blocks/<node>/<input>/1/<layer>`` (the input's layer list: 0 conv, 1 BN),
``node_combine_op/<node>/bifpn_combine_weights`` and ``node_post_combine_block/<node>/<layer>``
(0 activation, 1 separable conv, 2 BN). Layers are named after the API's scopes, ``/`` written
as ``.``: ``<name>.node_18.3_dn_lvl_6.post_combine.batchnorm``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import keras
from keras import layers, ops

BN_MOMENTUM = 0.99  # the config's conv_hyperparams batch_norm decay
BN_EPSILON = 1e-3
INITIALIZER_STDDEV = 0.03  # conv_hyperparams truncated_normal_initializer
FAST_ATTENTION_EPSILON = 1e-4
CHECKPOINT_PREFIX = "model/_feature_extractor/_bifpn_stage"


@dataclass(frozen=True)
class BiFPNNode:
    name: str  # '<iteration>_<dn|up>_lvl_<level>'
    level: int
    inputs: tuple[str, ...]

    @property
    def combines(self) -> bool:
        """Only nodes with several inputs have a combine op and a post-combine block."""
        return len(self.inputs) > 1


def bifpn_nodes(
    *, min_level: int, max_level: int, iterations: int, input_max_level: int
) -> list[BiFPNNode]:
    """The node list of ``_create_bifpn_node_config`` (input nodes excluded)."""
    nodes: list[BiFPNNode] = []
    for level in range(input_max_level + 1, max_level + 1):
        nodes.append(BiFPNNode(f"0_up_lvl_{level}", level, (f"0_up_lvl_{level - 1}",)))
    for iteration in range(1, iterations + 1):
        previous = iteration - 1
        for level in reversed(range(min_level, max_level)):
            if level > min_level or iteration == 1:
                same_level = f"{previous}_up_lvl_{level}"
            else:
                same_level = f"{previous}_dn_lvl_{level}"
            nodes.append(
                BiFPNNode(f"{iteration}_dn_lvl_{level}", level, (same_level, nodes[-1].name))
            )
        for level in range(min_level + 1, max_level + 1):
            inputs = [f"{previous}_up_lvl_{level}"]
            if level < max_level:
                inputs.append(f"{iteration}_dn_lvl_{level}")
            inputs.append(nodes[-1].name)
            nodes.append(BiFPNNode(f"{iteration}_up_lvl_{level}", level, tuple(inputs)))
    return nodes


def _level(node_name: str) -> int:
    return int(node_name.rsplit("_", 1)[1])


@keras.saving.register_keras_serializable(package="boxtune.zoo")
class FastAttentionCombine(keras.layers.Layer):
    """bifpn_utils.BiFPNCombineLayer('fast_attention'): a weighted sum of same-shape inputs,
    the weights ``relu(w) / (sum relu(w) + 1e-4)``, ``w`` of shape ``[n, 1]`` (ones at first)."""

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2:
            raise ValueError("FastAttentionCombine needs a list of at least 2 inputs")
        self.bifpn_combine_weights = self.add_weight(
            name="bifpn_combine_weights",
            shape=(len(input_shape), 1),
            initializer="ones",
            trainable=True,
        )

    def call(self, inputs):
        weights = ops.relu(self.bifpn_combine_weights)
        weights = weights / (ops.sum(weights) + FAST_ATTENTION_EPSILON)
        stacked = ops.stack(inputs, axis=-1)
        return ops.squeeze(ops.matmul(stacked, ops.cast(weights, stacked.dtype)), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


class _Builder:
    def __init__(self, name: str, filters: int, bn_momentum: float, bn_epsilon: float):
        self.name = name
        self.filters = filters
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

    def layer_name(self, scope: str) -> str:
        return f"{self.name}.{scope.replace('/', '.')}"

    def initializer(self):
        return keras.initializers.TruncatedNormal(stddev=INITIALIZER_STDDEV)

    def batch_norm(self, x, scope: str):
        return layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=self.bn_epsilon, name=self.layer_name(scope)
        )(x)

    def resample(self, x, scope: str, *, from_backbone: bool, input_level: int, level: int):
        """_create_bifpn_resample_block with max-pooling downsampling."""
        if from_backbone:
            x = layers.Conv2D(
                self.filters,
                1,
                padding="same",
                kernel_initializer=self.initializer(),
                name=self.layer_name(scope + "1x1_pre_sample/conv"),
            )(x)
            x = self.batch_norm(x, scope + "1x1_pre_sample/batchnorm")
        if input_level < level:
            stride = 2 ** (level - input_level)
            x = layers.MaxPooling2D(
                stride + 1,
                stride,
                padding="same",
                name=self.layer_name(scope + f"downsample_max_x{stride}"),
            )(x)
        elif input_level > level:
            scale = 2 ** (input_level - level)
            x = layers.UpSampling2D(
                scale,
                interpolation="nearest",
                name=self.layer_name(scope + f"nearest_neighbor_upsampling_x{scale}"),
            )(x)
        return x

    def post_combine(self, x, scope: str):
        """bifpn_utils.create_conv_block(conv_bn_act_pattern=False): swish, sep. conv, BN."""
        x = layers.Activation("swish", name=self.layer_name(scope + "activation"))(x)
        x = layers.SeparableConv2D(
            self.filters,
            3,
            padding="same",
            depth_multiplier=1,
            depthwise_initializer=self.initializer(),
            pointwise_initializer=self.initializer(),
            name=self.layer_name(scope + "separable_conv"),
        )(x)
        return self.batch_norm(x, scope + "batchnorm")


def _node_scope(index: int, node: BiFPNNode) -> str:
    return f"node_{index:02d}/{node.name}/"


def build_bifpn(
    *,
    input_channels: Sequence[int],
    min_level: int = 3,
    max_level: int = 7,
    filters: int,
    iterations: int,
    bn_momentum: float = BN_MOMENTUM,
    bn_epsilon: float = BN_EPSILON,
    name: str = "bifpn",
) -> keras.Model:
    """The BiFPN: backbone endpoints of levels ``min_level``.. (one per ``input_channels``
    entry, finest first) -> ``max_level - min_level + 1`` feature maps of ``filters`` channels,
    levels min_level..max_level."""
    input_max_level = min_level + len(input_channels) - 1
    if not input_channels or input_max_level > max_level:
        raise ValueError(
            f"{len(input_channels)} input levels from {min_level} do not fit "
            f"levels {min_level}..{max_level}"
        )
    builder = _Builder(name, filters, bn_momentum, bn_epsilon)
    inputs = [
        keras.Input((None, None, channels), name=f"{name}.input_level_{level}")
        for level, channels in zip(
            range(min_level, input_max_level + 1), input_channels, strict=True
        )
    ]
    maps = {
        f"0_up_lvl_{level}": x
        for level, x in zip(range(min_level, input_max_level + 1), inputs, strict=True)
    }
    nodes = bifpn_nodes(
        min_level=min_level,
        max_level=max_level,
        iterations=iterations,
        input_max_level=input_max_level,
    )
    backbone_names = set(maps)
    for index, node in enumerate(nodes):
        scope = _node_scope(index, node)
        resampled = [
            builder.resample(
                maps[source],
                f"{scope}input_{source}/",
                from_backbone=source in backbone_names,
                input_level=_level(source),
                level=node.level,
            )
            for source in node.inputs
        ]
        if node.combines:
            x = FastAttentionCombine(name=builder.layer_name(scope + "combine"))(resampled)
            x = builder.post_combine(x, scope + "post_combine/")
        else:
            x = resampled[0]
        maps[node.name] = x
    outputs = [maps[node.name] for node in nodes[-(max_level - min_level + 1) :]]
    return keras.Model(inputs, outputs, name=name)


_NODE_LAYER = re.compile(r"\.node_(\d+)\.(\d+)_(?:dn|up)_lvl_(\d+)\.")


def _structure(model: keras.Model) -> tuple[int, int, int, int]:
    """(min_level, max_level, iterations, input_max_level) of a model from build_bifpn."""
    found = [_NODE_LAYER.search(layer.name) for layer in model.layers]
    found = [match for match in found if match is not None]
    if not found:
        raise ValueError(f"{model.name!r} is not a BiFPN from build_bifpn")
    levels = [int(match.group(3)) for match in found]
    iterations = max(int(match.group(2)) for match in found)
    min_level, max_level = min(levels), max(levels)
    return min_level, max_level, iterations, min_level + len(model.inputs) - 1


def bifpn_checkpoint_map(model: keras.Model) -> dict[str, keras.Variable]:
    """Zoo checkpoint key (without ``/.ATTRIBUTES/VARIABLE_VALUE``) -> variable, for every
    variable of a model from :func:`build_bifpn`, by node index, input index and layer index."""
    min_level, max_level, iterations, input_max_level = _structure(model)
    nodes = bifpn_nodes(
        min_level=min_level,
        max_level=max_level,
        iterations=iterations,
        input_max_level=input_max_level,
    )
    backbone_names = {f"0_up_lvl_{level}" for level in range(min_level, input_max_level + 1)}
    prefix = model.name
    mapping: dict[str, keras.Variable] = {}

    def add(key: str, layer_scope: str, leaves: dict[str, str]) -> None:
        layer = model.get_layer(f"{prefix}.{layer_scope.replace('/', '.')}")
        variables = {variable.name: variable for variable in layer.weights}
        if set(variables) != set(leaves):
            raise AssertionError(f"{layer.name}: variables {sorted(variables)}")
        for keras_leaf, leaf in leaves.items():
            mapping[f"{CHECKPOINT_PREFIX}/{key}/{leaf}"] = variables[keras_leaf]

    conv = {"kernel": "kernel", "bias": "bias"}
    bn = {leaf: leaf for leaf in ("gamma", "beta", "moving_mean", "moving_variance")}
    separable = {leaf: leaf for leaf in ("depthwise_kernel", "pointwise_kernel", "bias")}
    for index, node in enumerate(nodes):
        scope = _node_scope(index, node)
        for position, source in enumerate(node.inputs):
            if source in backbone_names:  # the input block's layers: [conv, BN, resampling]
                block = f"node_input_blocks/{index}/{position}/1"
                pre = f"{scope}input_{source}/1x1_pre_sample/"
                add(f"{block}/0", pre + "conv", conv)
                add(f"{block}/1", pre + "batchnorm", bn)
        if node.combines:  # post-combine layers: [activation, separable conv, BN]
            weights = {"bifpn_combine_weights": "bifpn_combine_weights"}
            add(f"node_combine_op/{index}", scope + "combine", weights)
            add(
                f"node_post_combine_block/{index}/1",
                scope + "post_combine/separable_conv",
                separable,
            )
            add(f"node_post_combine_block/{index}/2", scope + "post_combine/batchnorm", bn)
    if len(mapping) != len(model.weights):
        raise AssertionError(f"{len(mapping)} keys for {len(model.weights)} variables")
    return mapping

"""The TF Object Detection API's ``WeightSharedConvolutionalBoxPredictor`` (its Keras version,
``convolutional_keras_box_predictor.py``) as one functional Keras sub-model, with the map from
the zoo checkpoint's ``model/_box_predictor/...`` keys to its variables.

Per feature map (level), a box tower and, unless ``share_prediction_tower``, a class tower:
``num_layers_before_predictor`` times (3x3 conv or separable conv -> batch norm -> activation);
then a box head (``anchors_per_location * 4`` channels) and a class head
(``anchors_per_location * num_class_slots``, bias initialised to
``class_prediction_bias_init``) on the tower output. The convolutions (towers and heads) are
shared by all levels; each level has its own batch norms. The heads' outputs are reshaped to
``[B, H * W * anchors_per_location, ...]`` and concatenated level after level, the anchor order
of ``boxtune.engines.tensorflow.zoo.anchors``.

Checkpoint layout (object-graph paths of the API's Keras predictor): the tower convs are
``_head_scope_conv_layers/<Tower>/<i>`` (``PredictionTower`` when the tower is shared, else
``BoxPredictionTower`` and ``ClassPredictionTower``); the per-level batch norms are
``_base_tower_layers_for_heads/<head>/<level>/<3 i + 1>`` (each level's tower is the list conv,
batch norm, activation, ...; the shared conv is saved under the first path); the heads are
``_box_prediction_head/_box_encoder_layers/0`` and
``_prediction_heads/class_predictions_with_background/_class_predictor_layers/0``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import keras

PREFIX = "model/_box_predictor/"
BOX_ENCODINGS = "box_encodings"
CLASS_PREDICTIONS = "class_predictions_with_background"
CLASS_HEAD_PREFIX = f"{PREFIX}_prediction_heads/{CLASS_PREDICTIONS}/"
BOX_CODE_SIZE = 4

Activation = Literal["relu6", "swish", "relu"]
# The config's conv_hyperparams.activation -> the Keras activation
CONFIG_ACTIVATIONS: dict[str, Activation] = {"RELU_6": "relu6", "SWISH": "swish", "RELU": "relu"}

# Layer name parts (after the model's name): the sub-model's structure is read back from them
_TOWERS = {BOX_ENCODINGS: "box_tower", CLASS_PREDICTIONS: "class_tower"}
_SHARED_TOWER = "shared_tower"
_CHECKPOINT_TOWERS = {
    _SHARED_TOWER: "PredictionTower",
    "box_tower": "BoxPredictionTower",
    "class_tower": "ClassPredictionTower",
}
_HEADS = {BOX_ENCODINGS: "box_head", CLASS_PREDICTIONS: "class_head"}
_HEAD_PATHS = {
    "box_head": f"{PREFIX}_box_prediction_head/_box_encoder_layers/0",
    "class_head": f"{CLASS_HEAD_PREFIX}_class_predictor_layers/0",
}


def _conv(
    filters: int,
    kernel_size: int,
    *,
    use_depthwise: bool,
    use_bias: bool,
    name: str,
    kernel_initializer=None,
    bias_initializer=None,
    kernel_regularizer=None,
) -> keras.layers.Layer:
    options = {"padding": "same", "use_bias": use_bias, "name": name}
    if bias_initializer is not None:
        options["bias_initializer"] = bias_initializer
    if use_depthwise:
        if kernel_initializer is not None:
            options["depthwise_initializer"] = kernel_initializer
            options["pointwise_initializer"] = kernel_initializer
        if kernel_regularizer is not None:
            options["depthwise_regularizer"] = kernel_regularizer
            options["pointwise_regularizer"] = kernel_regularizer
        return keras.layers.SeparableConv2D(filters, kernel_size, **options)
    if kernel_initializer is not None:
        options["kernel_initializer"] = kernel_initializer
    if kernel_regularizer is not None:
        options["kernel_regularizer"] = kernel_regularizer
    return keras.layers.Conv2D(filters, kernel_size, **options)


def build_weight_shared_box_predictor(
    *,
    feature_channels: Sequence[int],
    num_classes: int,
    depth: int,
    num_layers_before_predictor: int,
    use_depthwise: bool,
    share_prediction_tower: bool,
    anchors_per_location: int,
    class_prediction_bias_init: float,
    bn_momentum: float,
    bn_epsilon: float = 1e-3,
    add_background_class: bool,
    activation: Activation,
    tower_use_bias: bool,
    kernel_size: int = 3,
    tower_kernel_initializer: keras.initializers.Initializer | None = None,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
    name: str = "box_predictor",
) -> keras.Model:
    """The predictor for feature maps of ``feature_channels`` channels (one per level, all
    equal, as in every zoo model).

    Inputs: the list of feature maps ``[B, H_l, W_l, C]``; outputs: ``(box_encodings [B, A, 4],
    class_predictions_with_background [B, A, num_class_slots])`` with ``num_class_slots =
    num_classes + 1`` when ``add_background_class`` (SSD FPN / FPNLite) and ``num_classes``
    without (EfficientDet's ``add_background_class: false``).

    ``activation``: the config's ``conv_hyperparams.activation`` (``CONFIG_ACTIVATIONS``);
    ``tower_use_bias``: its ``force_use_bias`` (EfficientDet), the tower convs have no bias
    otherwise (batch norm follows). ``tower_kernel_initializer`` and ``kernel_regularizer`` are
    the tower convs' (the config's ``conv_hyperparams``; the heads keep the Keras defaults, as
    the API does without ``apply_conv_hyperparams_to_heads``; the regularizer, if given, also
    applies to the heads). Batch norm: momentum ``bn_momentum`` (the config's decay),
    ``bn_epsilon``; training or inference mode is the caller's ``training`` argument.
    """
    channels = [int(c) for c in feature_channels]
    if not channels:
        raise ValueError("the box predictor needs at least one feature map")
    if len(set(channels)) > 1:
        # The API inserts per-level projection layers then; no zoo model has them
        raise ValueError(f"feature maps of different channel counts {channels} are not supported")
    if num_layers_before_predictor < 1:
        raise ValueError("num_layers_before_predictor must be at least 1")
    class_slots = num_classes + 1 if add_background_class else num_classes
    inputs = [
        keras.Input(shape=(None, None, c), name=f"{name}_level_{i}") for i, c in enumerate(channels)
    ]
    heads = [BOX_ENCODINGS] if share_prediction_tower else [BOX_ENCODINGS, CLASS_PREDICTIONS]
    tower_convs: dict[str, list[keras.layers.Layer]] = {}
    for head in heads:
        tower = _SHARED_TOWER if share_prediction_tower else _TOWERS[head]
        tower_convs[head] = [
            _conv(
                depth,
                kernel_size,
                use_depthwise=use_depthwise,
                use_bias=tower_use_bias,
                name=f"{name}_{tower}_conv_{i}",
                kernel_initializer=tower_kernel_initializer,
                kernel_regularizer=kernel_regularizer,
            )
            for i in range(num_layers_before_predictor)
        ]
    box_head = _conv(
        anchors_per_location * BOX_CODE_SIZE,
        kernel_size,
        use_depthwise=use_depthwise,
        use_bias=True,
        name=f"{name}_{_HEADS[BOX_ENCODINGS]}",
        kernel_regularizer=kernel_regularizer,
    )
    class_head = _conv(
        anchors_per_location * class_slots,
        kernel_size,
        use_depthwise=use_depthwise,
        use_bias=True,
        name=f"{name}_{_HEADS[CLASS_PREDICTIONS]}",
        bias_initializer=keras.initializers.Constant(class_prediction_bias_init),
        kernel_regularizer=kernel_regularizer,
    )
    box_outputs, class_outputs = [], []
    for level, feature in enumerate(inputs):
        towers = {}
        for head in heads:
            tower = _SHARED_TOWER if share_prediction_tower else _TOWERS[head]
            x = feature
            for i, conv in enumerate(tower_convs[head]):
                x = conv(x)
                x = keras.layers.BatchNormalization(
                    momentum=bn_momentum,
                    epsilon=bn_epsilon,
                    name=f"{name}_{tower}_level_{level}_bn_{i}",
                )(x)
                x = keras.layers.Activation(
                    activation, name=f"{name}_{tower}_level_{level}_act_{i}"
                )(x)
            towers[head] = x
        class_tower = towers[BOX_ENCODINGS if share_prediction_tower else CLASS_PREDICTIONS]
        box_outputs.append(
            keras.layers.Reshape((-1, BOX_CODE_SIZE), name=f"{name}_box_flat_{level}")(
                box_head(towers[BOX_ENCODINGS])
            )
        )
        class_outputs.append(
            keras.layers.Reshape((-1, class_slots), name=f"{name}_class_flat_{level}")(
                class_head(class_tower)
            )
        )
    if len(inputs) > 1:
        box_encodings = keras.layers.Concatenate(axis=1, name=f"{name}_box_encodings")(box_outputs)
        class_predictions = keras.layers.Concatenate(axis=1, name=f"{name}_class_predictions")(
            class_outputs
        )
    else:
        box_encodings, class_predictions = box_outputs[0], class_outputs[0]
    return keras.Model(inputs, [box_encodings, class_predictions], name=name)


def _layers_by_name(model: keras.Model) -> dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers}


def class_head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layer(s) whose variables hold the class logits: what a new label map replaces."""
    return [_layers_by_name(model)[f"{model.name}_{_HEADS[CLASS_PREDICTIONS]}"]]


def box_head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [_layers_by_name(model)[f"{model.name}_{_HEADS[BOX_ENCODINGS]}"]]


def is_box_predictor_key(key: str) -> bool:
    """Whether a zoo checkpoint key (suffix removed) belongs to the box predictor (the part
    the API's ``fine_tune_checkpoint_type: detection`` does not restore)."""
    return key.startswith(PREFIX)


def is_class_head_key(key: str) -> bool:
    """Whether a zoo checkpoint key is the class head's (replaced for a new label map)."""
    return key.startswith(CLASS_HEAD_PREFIX)


def box_predictor_checkpoint_map(model: keras.Model) -> dict[str, keras.Variable]:
    """Every ``model/_box_predictor/...`` key of the zoo checkpoint (suffix removed) -> the
    variable of ``model`` (built by :func:`build_weight_shared_box_predictor`) that holds it.
    Built from the layers' structural names (tower, layer index, level)."""
    prefix = re.escape(model.name)
    tower_conv = re.compile(rf"{prefix}_(shared_tower|box_tower|class_tower)_conv_(\d+)")
    tower_bn = re.compile(rf"{prefix}_(shared_tower|box_tower|class_tower)_level_(\d+)_bn_(\d+)")
    heads = {f"{model.name}_{part}": path for part, path in _HEAD_PATHS.items()}
    mapping: dict[str, keras.Variable] = {}

    def add(path: str, layer: keras.layers.Layer) -> None:
        for variable in layer.weights:
            key = f"{path}/{variable.name}"
            if key in mapping:
                raise ValueError(f"two variables of the box predictor map to {key}")
            mapping[key] = variable

    for layer in model.layers:
        if match := tower_conv.fullmatch(layer.name):
            tower, index = match.group(1), int(match.group(2))
            add(f"{PREFIX}_head_scope_conv_layers/{_CHECKPOINT_TOWERS[tower]}/{index}", layer)
        elif match := tower_bn.fullmatch(layer.name):
            tower, level, index = match.group(1), int(match.group(2)), int(match.group(3))
            head = CLASS_PREDICTIONS if tower == "class_tower" else BOX_ENCODINGS
            # each level's tower list is [conv, batch norm, activation] * layers
            add(f"{PREFIX}_base_tower_layers_for_heads/{head}/{level}/{3 * index + 1}", layer)
        elif layer.name in heads:
            add(heads[layer.name], layer)
        elif layer.weights:
            raise ValueError(f"box predictor layer {layer.name!r} has no checkpoint rule")
    return mapping

"""Pretrained weights from a TF Object Detection API frozen graph (``frozen_inference_graph.pb``).

A frozen graph holds its variables as ``Const`` nodes named after their scope
(``FeatureExtractor/MobilenetV2/Conv/weights``, ``BoxPredictor_0/ClassPredictor/biases``...).
They are read with TensorFlow's GraphDef API (parsing only: nothing in the graph runs) and
assigned to the Keras layers of the same scope.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from boxtune.errors import ModelError

# Keras weight order per layer type -> the API's variable names
_CONV = ("weights",)
_CONV_WITH_BIAS = ("weights", "biases")
_DEPTHWISE = ("depthwise_weights",)
_BATCH_NORM = ("gamma", "beta", "moving_mean", "moving_variance")


def read_constants(path: Path) -> dict[str, np.ndarray]:
    """Every float ``Const`` node of the graph at ``path``, by node name."""
    graph = tf.compat.v1.GraphDef()
    try:
        graph.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # protobuf's DecodeError, OSError
        raise ModelError(
            f"cannot read a TensorFlow frozen graph ({exc})",
            where=str(path),
            hint="pass the frozen_inference_graph.pb of a TF Object Detection API export",
        ) from exc
    constants = {}
    for node in graph.node:
        if node.op == "Const" and node.attr["dtype"].type == tf.float32.as_datatype_enum:
            constants[node.name] = tf.make_ndarray(node.attr["value"].tensor)
    return constants


def _variable_names(layer: keras.layers.Layer) -> tuple[str, ...] | None:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return _DEPTHWISE
    if isinstance(layer, keras.layers.Conv2D):
        return _CONV_WITH_BIAS if layer.use_bias else _CONV
    if isinstance(layer, keras.layers.BatchNormalization):
        return _BATCH_NORM
    return None


def _scope(layer: keras.layers.Layer) -> str:
    return layer.name.replace(".", "/")


def import_weights(
    model: keras.Model, constants: dict[str, np.ndarray], *, skip=lambda name: False
) -> int:
    """Assign every weight of ``model``'s layers from ``constants`` (layers for which ``skip``
    is true are left as they are); returns how many arrays were assigned. A missing constant or
    a shape mismatch is a ModelError naming the variable."""
    assigned = 0
    for layer in model.layers:
        names = _variable_names(layer)
        if names is None or skip(layer.name):
            continue
        values = []
        for name in names:
            key = f"{_scope(layer)}/{name}"
            if key not in constants:
                raise ModelError(
                    f"the frozen graph has no constant {key!r}",
                    hint="the graph is not an SSDLite-MobileNetV2 export of the TF Object "
                    "Detection API",
                )
            values.append(constants[key])
        for variable, value in zip(layer.weights, values, strict=True):
            if tuple(variable.shape) != value.shape:
                raise ModelError(
                    f"{_scope(layer)}: the graph's {value.shape} does not fit the model's "
                    f"{tuple(variable.shape)}",
                    hint="the graph was exported for another input size or class count",
                )
        layer.set_weights(values)
        assigned += len(values)
    return assigned

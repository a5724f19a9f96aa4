"""The artifact's ``model.onnx``: the ``detect_batch`` signature (uint8 images ``[B, S, S, 3]``
-> the ``detection_*`` outputs, NMS included) converted by tf2onnx, for ONNX Runtime, which
serves it about 2.5 times faster than the SavedModel on a CPU with the same boxes
(``benchmarks/tf_engine_speed.py``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tensorflow as tf

from boxtune.engines.onnx_session import cpu_session
from boxtune.engines.tensorflow.export_check import check_export
from boxtune.engines.tensorflow.saved_model import DetectionModule
from boxtune.errors import storage_errors
from boxtune.fileio import atomic_write_bytes

ONNX_FILE = "model.onnx"
ONNX_INPUT = "images"
ONNX_OPSET = 17
MAX_BOX_DIFFERENCE = 1e-4  # normalised coordinates, vs the Keras model


def _fold_captured_inputs(proto, concrete) -> None:
    """tf2onnx turns the function's captured constants (the anchors) into graph inputs: make
    each an initializer holding its value, or drop it when no node reads it."""
    import onnx

    captured = concrete.captured_inputs
    placeholders = concrete.inputs[len(concrete.inputs) - len(captured) :]
    values = {
        p.name: v.numpy()
        for p, v in zip(placeholders, captured, strict=True)
        if v.dtype != tf.resource
    }
    graph = proto.graph
    read = {name for node in graph.node for name in node.input}
    for graph_input in list(graph.input):
        if graph_input.name in values:
            graph.input.remove(graph_input)
            if graph_input.name in read:
                array = values[graph_input.name]
                graph.initializer.append(onnx.numpy_helper.from_array(array, graph_input.name))


def convert(detector) -> bytes:
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # it logs every pass at INFO
    module = DetectionModule(detector)
    size = detector.image_size
    spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name=ONNX_INPUT)
    function = tf.function(module.detect_batch.python_function, input_signature=[spec])
    proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=ONNX_OPSET)
    _fold_captured_inputs(proto, function.get_concrete_function())
    return proto.SerializeToString()


class OnnxModel:
    """An exported model in ONNX Runtime: uint8 ``[B, S, S, 3]`` -> signature outputs."""

    def __init__(self, model: Path | bytes, *, other_backend: str | None = None):
        self.session = cpu_session(model, other_backend=other_backend)
        self._names = [output.name for output in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, {ONNX_INPUT: np.ascontiguousarray(batch)})
        return dict(zip(self._names, outputs, strict=True))


def export_onnx(detector, target: Path) -> None:
    content = convert(detector)
    model = OnnxModel(content)
    check_export(
        detector,
        lambda image: model(image[None]),
        what="ONNX",
        tolerance=MAX_BOX_DIFFERENCE,
        where=str(target),
    )
    with storage_errors("writing the ONNX model", target):
        atomic_write_bytes(Path(target), content)

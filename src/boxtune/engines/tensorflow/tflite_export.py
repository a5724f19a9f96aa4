"""``boxtune export --format tflite``: the detector as one TFLite flatbuffer (builtin ops only).

The model takes uint8 ``images`` ``[1, S, S, 3]`` (already stretched to the input size) and
answers the serving signature's outputs, NMS included (the class loop is unrolled, so there is
no while loop). Variables are frozen into constants first: TFLite cannot read Keras 3's
resource variables. The export is checked against the Keras model on a real image before it is
written, and replaces the target atomically.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from boxtune.engines.tensorflow.export_check import check_export
from boxtune.engines.tensorflow.saved_model import DetectionModule
from boxtune.fileio import atomic_write_bytes

# The signature's outputs, in the order the converter lays them out (sorted by name)
OUTPUT_NAMES = (
    "detection_anchor_indices",
    "detection_boxes",
    "detection_classes",
    "detection_scores",
    "num_detections",
    "raw_detection_boxes",
    "raw_detection_scores",
)
MAX_BOX_DIFFERENCE = 1e-2  # normalised coordinates, between TFLite and the Keras model


@dataclass(frozen=True)
class TFLiteExport:
    path: Path
    size_bytes: int
    max_box_difference: float  # on the check image, vs the Keras model


def convert(detector) -> bytes:
    module = DetectionModule(detector)
    size = detector.image_size
    function = tf.function(
        module.detect_batch.python_function,
        input_signature=[tf.TensorSpec([1, size, size, 3], tf.uint8, name="images")],
    )
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


class TFLiteModel:
    """A converted flatbuffer, run with TensorFlow's TFLite interpreter."""

    def __init__(self, content: bytes):
        with warnings.catch_warnings():
            # TF 2.21 still ships it; its successor (ai-edge-litert) would be another dependency
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            self._interpreter = tf.lite.Interpreter(model_content=content)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: d["name"])
        self._outputs = dict(zip(OUTPUT_NAMES, (d["index"] for d in outputs), strict=True))

    def __call__(self, image: np.ndarray) -> dict[str, np.ndarray]:
        self._interpreter.set_tensor(self._input, image[None])
        self._interpreter.invoke()
        return {name: self._interpreter.get_tensor(i) for name, i in self._outputs.items()}


def export_tflite(detector, target: Path) -> TFLiteExport:
    content = convert(detector)
    difference = check_export(
        detector,
        TFLiteModel(content),
        what="TFLite",
        tolerance=MAX_BOX_DIFFERENCE,
        where=str(target),
    )
    atomic_write_bytes(Path(target), content)
    return TFLiteExport(Path(target), len(content), difference)

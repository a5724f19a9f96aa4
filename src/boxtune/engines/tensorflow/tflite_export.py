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

from boxtune.engines.tensorflow.saved_model import DetectionModule
from boxtune.errors import ModelError
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


def check_image(size: int) -> np.ndarray:
    """A deterministic textured image with a few bright shapes (something to detect)."""
    rng = np.random.default_rng(0)
    image = rng.integers(40, 120, (size, size, 3), dtype=np.uint8)
    for i in range(3):
        y, x = (size // 5) * (i + 1), (size // 4) * (i % 3 + 1)
        image[y : y + size // 6, x : x + size // 7] = (220, 200 - 60 * i, 60 * i)
    return image


def max_box_difference(reference: dict, candidate: dict, top: int = 10) -> float:
    """Largest coordinate difference over the reference's ``top`` detections."""
    count = min(top, int(reference["num_detections"][0]))
    if count == 0:
        return 0.0
    a = reference["detection_boxes"][0, :count]
    b = candidate["detection_boxes"][0, :count]
    return float(np.abs(a - b).max())


def export_tflite(detector, target: Path) -> TFLiteExport:
    content = convert(detector)
    image = check_image(detector.image_size)
    reference = detector.detect_outputs(image[None])
    difference = max_box_difference(reference, TFLiteModel(content)(image))
    if not difference <= MAX_BOX_DIFFERENCE:
        raise ModelError(
            f"the TFLite conversion gives other boxes than the model (max difference "
            f"{difference:.4f} > {MAX_BOX_DIFFERENCE})",
            where=str(target),
            hint="report it with the artifact's manifest; serve the SavedModel meanwhile",
        )
    atomic_write_bytes(Path(target), content)
    return TFLiteExport(Path(target), len(content), difference)

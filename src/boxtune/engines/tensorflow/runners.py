"""Inference runners of the TensorFlow engine: any HxWx3 uint8 image in, detections in that
image's pixels out. Each keeps the raw signature outputs of every image, which the server's
verbose answer carries as ``tensorflow_model_output`` (as the managed endpoint does)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow as tf

from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.engines.imaging import stretch_batch
from boxtune.engines.tensorflow.saved_model import BATCH_SIGNATURE, detections_of
from boxtune.errors import ModelError
from boxtune.labels import LabelMap

BACKENDS = ("onnxruntime", "savedmodel", "keras")
_CHUNK = 16  # images per call: bounds memory for long request lists

DetectFn = Callable[[np.ndarray], dict[str, np.ndarray]]


class _SignatureRunner(Runner):
    model_output_name: ClassVar[str] = "tensorflow_model_output"

    def __init__(self, detect_batch: DetectFn, image_size: int, label_map: LabelMap):
        self._detect_batch = detect_batch
        self.image_size = image_size
        self.label_map = label_map

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), _CHUNK):
            batch, sizes = stretch_batch(images[start : start + _CHUNK], self.image_size)
            out = self._detect_batch(batch)
            results += [detections_of(out, i, h, w) for i, (h, w) in enumerate(sizes)]
        return results


class OnnxRunner(_SignatureRunner):
    """The artifact's ``model.onnx`` in ONNX Runtime (the default: the fastest on a CPU)."""

    backend = "onnxruntime"

    def __init__(self, path: Path, image_size: int, label_map: LabelMap):
        from boxtune.engines.tensorflow.onnx_export import OnnxModel

        model = OnnxModel(path, other_backend="savedmodel")  # a ModelError says why not
        super().__init__(model, image_size, label_map)


class SavedModelRunner(_SignatureRunner):
    """The artifact's SavedModel, through its ``detect_batch`` signature."""

    backend = "savedmodel"

    def __init__(self, path: Path, image_size: int, label_map: LabelMap):
        try:
            self._loaded = tf.saved_model.load(str(path))
            signature = self._loaded.signatures[BATCH_SIGNATURE]
        except (OSError, KeyError, ValueError, tf.errors.OpError) as exc:
            raise ModelError(
                f"cannot load the SavedModel ({type(exc).__name__}: {exc})",
                where=str(path),
                hint="the artifact is damaged or not a boxtune TensorFlow export; export it again",
            ) from exc

        def detect_batch(batch: np.ndarray) -> dict[str, np.ndarray]:
            return {k: v.numpy() for k, v in signature(images=tf.constant(batch)).items()}

        super().__init__(detect_batch, image_size, label_map)


class KerasRunner(_SignatureRunner):
    """The in-process Keras model over its current weights (a detector's ``detect_outputs``)."""

    backend = "keras"

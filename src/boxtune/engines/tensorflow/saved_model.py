"""The artifact's ``saved_model/``: the TF Object Detection API's serving signature.

``serving_default`` takes what TF Serving and the API's client code send, a uint8
``input_tensor`` ``[1, H, W, 3]`` of any size, and answers ``detection_boxes`` (``[ymin, xmin,
ymax, xmax]`` normalised), ``detection_classes`` (1-based label ids, float32, as the API),
``detection_scores``, ``num_detections``, ``detection_anchor_indices``, and the raw
``raw_detection_boxes`` / ``raw_detection_scores`` (every anchor, background column included).
``detect_batch`` answers the same for uint8 ``images`` ``[B, S, S, 3]`` already at the input
size: boxtune's own runner batches requests through it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from boxtune.detections import Detections
from boxtune.engines.tensorflow.postprocess import decode_boxes, detect
from boxtune.errors import storage_errors

if TYPE_CHECKING:
    from boxtune.engines.tensorflow.detector import TensorFlowDetector

SAVED_MODEL_DIR = "saved_model"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_PREFIX = f"{CHECKPOINT_DIR}/ckpt"
SERVING_SIGNATURE = "serving_default"
BATCH_SIGNATURE = "detect_batch"
INPUT_NAME = "input_tensor"
LABEL_ID_OFFSET = 1  # the API's detection_classes count from 1 (0 is the background)
# What the raw output of one image holds in a verbose answer: the per-detection outputs
RAW_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")


class DetectionModule(tf.Module):
    def __init__(self, detector: TensorFlowDetector):
        super().__init__(name="boxtune_detector")
        self.model = detector.model
        self._preprocess = detector.network.preprocess
        self.anchors = tf.constant(detector.network.anchors)
        self._config = detector.network.postprocess
        size = detector.image_size
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT_NAME)],
        )
        self.detect_batch = tf.function(
            self._outputs,
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")],
        )
        self._size = size

    def _serve(self, input_tensor):
        resized = tf.image.resize(input_tensor, [self._size, self._size], method="bilinear")
        return self._outputs(resized)

    def _outputs(self, images):
        codes, logits = self.model(self._preprocess(images), training=False)
        found = detect(codes, logits, self.anchors, self._config)
        return {
            "detection_boxes": found["boxes"],
            "detection_scores": found["scores"],
            "detection_classes": tf.cast(found["classes"] + LABEL_ID_OFFSET, tf.float32),
            "num_detections": tf.cast(found["num_detections"], tf.float32),
            "detection_anchor_indices": tf.cast(found["anchor_indices"], tf.float32),
            "raw_detection_boxes": decode_boxes(codes, self.anchors, self._config),
            "raw_detection_scores": tf.sigmoid(logits),
        }


def detections_of(out: dict[str, np.ndarray], i: int, height: int, width: int) -> Detections:
    """Image ``i`` of a signature's numpy outputs as Detections in a ``height`` x ``width``
    image's pixels, carrying its raw outputs."""
    count = int(out["num_detections"][i])
    ymin, xmin, ymax, xmax = out["detection_boxes"][i, :count].T
    scale = np.array([width, height, width, height], np.float32)
    boxes = np.stack([xmin, ymin, xmax, ymax], axis=1).astype(np.float32) * scale
    classes = out["detection_classes"][i, :count].astype(np.int64) - LABEL_ID_OFFSET
    scores = out["detection_scores"][i, :count].astype(np.float32)
    raw = {name: np.asarray(out[name][i]).tolist() for name in RAW_OUTPUTS}
    return Detections(boxes, classes, scores, model_output=raw)


def export_saved_model(detector: TensorFlowDetector, directory: Path) -> Path:
    """Write ``directory/saved_model``; returns its path."""
    module = DetectionModule(detector)
    target = Path(directory) / SAVED_MODEL_DIR
    signatures = {
        SERVING_SIGNATURE: module.serve.get_concrete_function(),
        BATCH_SIGNATURE: module.detect_batch.get_concrete_function(),
    }
    with storage_errors("writing the SavedModel", target):
        tf.saved_model.save(module, str(target), signatures=signatures)
    return target


def files_under(directory: Path) -> list[str]:
    """Every file below ``directory`` as a relative POSIX path (the artifact's names)."""
    directory = Path(directory)
    names = []
    for root, _, files in os.walk(directory):
        for name in files:
            names.append((Path(root) / name).relative_to(directory).as_posix())
    return sorted(names)

"""Serving the default model's ``model.onnx`` with ONNX Runtime and numpy alone (no torch).

Images are stretched to S x S (as the training loader does), run through the graph, decoded by
the shared numpy post-processing and mapped back to each original image's pixels. The torch
runner (``runners.py``) derives from the same :class:`ImageRunner`, so both answer alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.engines.imaging import stretch_batch, to_original
from boxtune.engines.onnx_session import cpu_session
from boxtune.engines.torch.decoding import (
    DEFAULT_POSTPROCESS,
    PYRAMID_STRIDES,
    PostprocessConfig,
    anchor_grid,
    postprocess,
)
from boxtune.labels import LabelMap

# The graph: float32 [batch, 3, S, S] pixels in 0..255 in, raw head outputs out.
ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"  # the same graph statically quantized to int8
INPUT_NAME = "images"
OUTPUT_NAMES = ("class_logits", "box_deltas")
_CHUNK = 16  # images per forward pass: bounds memory for long request lists


def resize_batch(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, list[tuple]]:
    """uint8 [B, 3, S, S] and each image's (height, width)."""
    batch, sizes = stretch_batch(images, size)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), sizes


class ImageRunner(Runner):
    """Chunks, resizing and the mapping back to original pixels; subclasses run one batch."""

    def __init__(self, image_size: int, label_map: LabelMap, class_lookup: np.ndarray | None):
        self.image_size = image_size
        self.label_map = label_map
        # For COCO runners: network label (COCO id) -> index in label_map, -1 for unused ids.
        self._class_lookup = class_lookup

    def _detect(self, batch: np.ndarray) -> list[Detections]:
        raise NotImplementedError

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections] = []
        for start in range(0, len(images), _CHUNK):
            chunk = images[start : start + _CHUNK]
            batch, sizes = resize_batch(chunk, self.image_size)
            for det, (h, w) in zip(self._detect(batch), sizes, strict=True):
                if self._class_lookup is not None:
                    mapped = self._class_lookup[
                        np.clip(det.classes, 0, len(self._class_lookup) - 1)
                    ]
                    keep = mapped >= 0
                    det = Detections(det.boxes[keep], mapped[keep], det.scores[keep])
                results.append(to_original(det, self.image_size, h, w))
        return results


class OnnxRunner(ImageRunner):
    """``backend``: ``onnxruntime`` for ``model.onnx``, ``onnxruntime-int8`` for its
    quantized twin; the decoding is the same."""

    def __init__(
        self,
        onnx_path: Path,
        image_size: int,
        label_map: LabelMap,
        strides: tuple[int, ...] = PYRAMID_STRIDES,
        config: PostprocessConfig = DEFAULT_POSTPROCESS,
        *,
        backend: str = "onnxruntime",
    ):
        super().__init__(image_size, label_map, None)
        self.backend = backend
        self.session = cpu_session(onnx_path, other_backend="torch")
        self.anchors = anchor_grid(image_size, strides)
        self.config = config

    def _detect(self, batch: np.ndarray) -> list[Detections]:
        logits, deltas = self.session.run(
            list(OUTPUT_NAMES), {INPUT_NAME: batch.astype(np.float32)}
        )
        return postprocess(logits, deltas, self.anchors, self.image_size, self.config)

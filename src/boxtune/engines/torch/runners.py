"""Inference runners: any HxWx3 uint8 image in, detections in that image's pixels out.

Images are stretched to S x S (as the training loader does), run through the network (torch or
onnxruntime), decoded by the shared post-processing and mapped back to the original pixels.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.engines.imaging import stretch_batch, to_original
from boxtune.engines.onnx_session import cpu_session
from boxtune.engines.torch.anchors import make_anchors
from boxtune.engines.torch.efficientdet import EfficientDetLite
from boxtune.engines.torch.onnx_export import INPUT_NAME, ONNX_FILE, export_onnx
from boxtune.engines.torch.postprocess import PostprocessConfig, postprocess
from boxtune.errors import BoxtuneWarning, ModelError
from boxtune.labels import LabelMap

# The runtimes this engine serves on, the default first.
BACKENDS = ("onnxruntime", "torch")
_CHUNK = 16  # images per forward pass: bounds memory for long request lists


def resize_batch(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, list[tuple]]:
    """uint8 [B, 3, S, S] and each image's (height, width)."""
    batch, sizes = stretch_batch(images, size)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), sizes


class _ImageRunner(Runner):
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


class TorchRunner(_ImageRunner):
    backend = "torch"

    def __init__(self, net: nn.Module, label_map: LabelMap, class_lookup: np.ndarray | None = None):
        super().__init__(int(net.image_size), label_map, class_lookup)
        self.net = net

    def _detect(self, batch: np.ndarray) -> list[Detections]:
        self.net.eval()
        device = next(self.net.parameters()).device
        with torch.inference_mode():
            return self.net.detect(torch.from_numpy(batch).to(device))


class OnnxRunner(_ImageRunner):
    backend = "onnxruntime"

    def __init__(
        self,
        onnx_path: Path,
        image_size: int,
        label_map: LabelMap,
        strides: tuple[int, ...],
        config: PostprocessConfig | None = None,
    ):
        super().__init__(image_size, label_map, None)
        self.session = cpu_session(onnx_path, other_backend="torch")
        self.anchors = make_anchors(image_size, strides)
        self.config = config or PostprocessConfig()

    def _detect(self, batch: np.ndarray) -> list[Detections]:
        logits, deltas = self.session.run(None, {INPUT_NAME: batch.astype(np.float32)})
        return postprocess(
            torch.from_numpy(logits),
            torch.from_numpy(deltas),
            self.anchors,
            self.image_size,
            self.config,
        )


def fall_back_to_torch(reason: str) -> None:
    warnings.warn(f"{reason}; serving with the torch backend", BoxtuneWarning, stacklevel=3)


def make_runner(net: nn.Module, label_map: LabelMap, backend: str | None) -> Runner:
    """A runner over ``net``'s current weights (onnxruntime exports a temporary model.onnx).
    ``None``: onnxruntime where the network exports to ONNX, else torch."""
    if backend is not None and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
    if backend in (None, "onnxruntime"):
        if isinstance(net, EfficientDetLite):
            # The session holds the graph in memory, so the file is only needed while loading.
            with tempfile.TemporaryDirectory(prefix="boxtune-onnx-") as tmp:
                path = Path(tmp) / ONNX_FILE
                export_onnx(net, net.image_size, path)
                return OnnxRunner(
                    path, net.image_size, label_map, net.strides, net.postprocess_config
                )
        if backend is not None:
            fall_back_to_torch(f"{type(net).__name__} has no ONNX export")
    return TorchRunner(net, label_map)

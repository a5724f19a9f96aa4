"""Inference runners: any HxWx3 uint8 image in, detections in that image's pixels out.

Images are stretched to S x S (as the training loader does), run through the network (torch or
onnxruntime), decoded by the shared post-processing and mapped back to the original pixels.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.engines.torch.anchors import make_anchors
from boxtune.engines.torch.efficientdet import EfficientDetLite
from boxtune.engines.torch.onnx_export import INPUT_NAME, ONNX_FILE, export_onnx
from boxtune.engines.torch.postprocess import PostprocessConfig, postprocess
from boxtune.errors import BoxtuneWarning, ModelError
from boxtune.labels import LabelMap

# The runtimes this engine serves on, the default first.
BACKENDS = ("onnxruntime", "torch")
_CHUNK = 16  # images per forward pass: bounds memory for long request lists


def as_rgb_uint8(image: np.ndarray, index: int = 0) -> np.ndarray:
    """Gray and RGBA become RGB; anything else that is not HxWx3 uint8 is an error."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ModelError(
            f"image {index} has dtype {array.dtype}, expected uint8",
            where=f"images[{index}]",
            hint="decode images with PIL/numpy to 0..255 uint8 RGB arrays",
        )
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise ModelError(
            f"image {index} has shape {array.shape}, expected HxWx3",
            where=f"images[{index}]",
            hint="pass RGB images as height x width x 3 arrays",
        )
    return array[:, :, :3]


def resize_batch(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, list[tuple]]:
    """uint8 [B, 3, S, S] and each image's (height, width)."""
    batch = np.empty((len(images), 3, size, size), dtype=np.uint8)
    sizes = []
    for i, image in enumerate(images):
        rgb = as_rgb_uint8(image, i)
        sizes.append(rgb.shape[:2])
        resized = Image.fromarray(np.ascontiguousarray(rgb)).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        batch[i] = np.asarray(resized).transpose(2, 0, 1)
    return batch, sizes


def _to_original(det: Detections, size: int, height: int, width: int) -> Detections:
    scale = np.array([width / size, height / size, width / size, height / size], np.float32)
    return Detections((det.boxes * scale).astype(np.float32), det.classes, det.scores)


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
                results.append(_to_original(det, self.image_size, h, w))
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


def ort_threads() -> int:
    """Intra-op threads for onnxruntime: the CPUs this process may use (``BOXTUNE_ORT_THREADS``
    overrides); more threads than cores only adds contention."""
    override = os.environ.get("BOXTUNE_ORT_THREADS")
    if override:
        return max(1, int(override))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


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
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = ort_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
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

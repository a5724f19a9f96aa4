"""The torch runner (eager, over a network's current weights) and the choice of runner for a
network; the ONNX Runtime runner, which needs no torch, is in ``onnx_runner.py``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.engines.torch import BACKENDS, INT8_BACKEND, fall_back_to_torch
from boxtune.engines.torch.efficientdet import EfficientDetLite
from boxtune.engines.torch.onnx_export import export_onnx
from boxtune.engines.torch.onnx_runner import ONNX_FILE, ImageRunner, OnnxRunner
from boxtune.errors import ModelError
from boxtune.labels import LabelMap


class TorchRunner(ImageRunner):
    backend = "torch"

    def __init__(self, net: nn.Module, label_map: LabelMap, class_lookup: np.ndarray | None = None):
        super().__init__(int(net.image_size), label_map, class_lookup)
        self.net = net

    def _detect(self, batch: np.ndarray) -> list[Detections]:
        self.net.eval()
        device = next(self.net.parameters()).device
        with torch.inference_mode():
            return self.net.detect(torch.from_numpy(batch).to(device))


def make_runner(net: nn.Module, label_map: LabelMap, backend: str | None) -> Runner:
    """A runner over ``net``'s current weights (onnxruntime exports a temporary model.onnx).
    ``None``: onnxruntime where the network exports to ONNX, else torch."""
    if backend is not None and backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
    if backend == INT8_BACKEND:
        raise ModelError(
            f"the {INT8_BACKEND} backend serves an artifact's quantized model, and a network in "
            "training has none",
            where="--backend",
            hint="export the artifact with `boxtune export --quantize int8` and serve that, or "
            "use --backend onnxruntime",
        )
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

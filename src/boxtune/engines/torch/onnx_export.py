"""ONNX export of the default model's raw head outputs (decode + NMS stay outside the graph)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from boxtune.engines.torch.onnx_runner import INPUT_NAME, OUTPUT_NAMES
from boxtune.errors import storage_errors
from boxtune.fileio import atomic_path

OPSET = 17


class _Raw(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(images)


def export_onnx(net: nn.Module, image_size: int, path: Path) -> None:
    """Input ``images`` float32 [batch, 3, S, S] in 0..255; dynamic batch axis."""
    was_training = net.training
    net.eval()
    dummy = torch.zeros(1, 3, image_size, image_size)
    try:
        with (
            atomic_path(path) as tmp,
            storage_errors("writing the ONNX model", path),
            warnings.catch_warnings(),
            torch.no_grad(),
        ):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Raw(net),
                (dummy,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}},
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        net.train(was_training)

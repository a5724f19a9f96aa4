"""The torch engine: builds networks from catalog specs and loads them back from artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import nn

from boxtune.catalog import ModelSpec, coco_categories, get_spec, resolve_weights
from boxtune.engines.base import Backend, Init, Runner
from boxtune.engines.torch.checkpoint import WEIGHTS_FILE, load_weights
from boxtune.engines.torch.detector import TorchDetector
from boxtune.engines.torch.efficientdet import EfficientDetLite
from boxtune.engines.torch.onnx_export import ONNX_FILE
from boxtune.engines.torch.runners import OnnxRunner, TorchRunner, notice
from boxtune.engines.torch.tv_models import (
    COCO_NUM_CLASSES,
    TorchvisionNet,
    background_slots,
    build_torchvision,
    load_coco_weights,
)
from boxtune.errors import ModelError
from boxtune.labels import LabelMap

DEFAULT_ARCHITECTURE = "efficientdet_lite0"


def _check_init(init: str) -> None:
    if init not in ("pretrained", "random"):
        raise ModelError(f"unknown init {init!r}", hint="use 'pretrained' or 'random'")


def build_network(
    spec: ModelSpec,
    num_classes: int,
    *,
    init: Init = "pretrained",
    image_size: int | None = None,
    weights: str | os.PathLike | None = None,
    freeze_early_layers: bool | None = None,
) -> nn.Module:
    """The network of ``spec`` for ``num_classes`` classes (background not counted).

    ``init="pretrained"`` loads the spec's weights (resolved through the catalog: packaged,
    cached or downloaded); torchvision heads are then replaced for ``num_classes``.
    """
    _check_init(init)
    size = image_size or spec.image_size
    if spec.architecture == DEFAULT_ARCHITECTURE:
        backbone = resolve_weights(spec, weights) if init == "pretrained" else None
        return EfficientDetLite(
            num_classes, size, backbone_weights=backbone, freeze_early_layers=freeze_early_layers
        )
    if init == "pretrained":
        model = build_torchvision(spec.architecture, COCO_NUM_CLASSES, size)
        load_coco_weights(model, resolve_weights(spec, weights))
        net = TorchvisionNet(model, spec.architecture, size, pretrained=True)
        net.reset_classes(num_classes)
        return net
    model = build_torchvision(
        spec.architecture, num_classes + background_slots(spec.architecture), size
    )
    # From an artifact (random init, then its weights): freeze as the pretrained run did.
    return TorchvisionNet(model, spec.architecture, size, pretrained=bool(freeze_early_layers))


def coco_label_map() -> LabelMap:
    return LabelMap.from_categories(coco_categories())


class TorchEngine:
    name = "torch"

    def seed(self, seed: int) -> None:
        """Seed torch's generators so that a run with a fixed seed repeats on CPU (the trainer
        never imports torch itself)."""
        import torch

        torch.manual_seed(seed)

    def resolve_device(self, device: str) -> str:
        """``auto``: cuda when available, else cpu."""
        import torch

        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return device

    def create(
        self,
        spec: ModelSpec,
        label_map: LabelMap,
        init: Init = "pretrained",
        reinitialize_head: bool = True,
        device: str = "cpu",
        weights: str | os.PathLike | None = None,
        image_size: int | None = None,
    ) -> TorchDetector:
        """A detector for ``label_map``'s classes (``image_size`` overrides the spec's input).

        The class head of a pretrained model is always new here (its classes are COCO's or
        none); ``reinitialize_head`` matters when loading an artifact (see load_detector).
        """
        if len(label_map) == 0:
            raise ModelError(
                "the label map has no classes", hint="the dataset needs at least one category"
            )
        del reinitialize_head  # a pretrained checkpoint never has the dataset's head
        net = build_network(spec, len(label_map), init=init, weights=weights, image_size=image_size)
        return TorchDetector(net, spec, label_map, device)

    def load_detector(self, artifact, device: str = "cpu") -> TorchDetector:
        """The trainable detector stored in an artifact (incremental training)."""
        from boxtune.artifacts import load_artifact

        art = artifact if hasattr(artifact, "manifest") else load_artifact(artifact)
        spec = get_spec(art.model_id)
        # The stored weights replace the random init; the early backbone stages stay frozen as
        # they were when fine-tuning from ImageNet weights.
        net = build_network(
            spec,
            len(art.label_map),
            init="random",
            image_size=art.image_size,
            freeze_early_layers=True,
        )
        load_weights(net, art.directory / WEIGHTS_FILE)
        return TorchDetector(net, spec, art.label_map, device)

    def load_runner(self, artifact, backend: Backend = "onnxruntime") -> Runner:
        from boxtune.artifacts import load_artifact

        art = artifact if hasattr(artifact, "manifest") else load_artifact(artifact)
        onnx_path: Path = art.directory / ONNX_FILE
        if backend == "onnxruntime":
            if onnx_path.is_file():
                spec = get_spec(art.model_id)
                strides = EfficientDetLite.strides_for(spec)
                return OnnxRunner(onnx_path, art.image_size, art.label_map, strides)
            notice(f"{art.directory} has no {ONNX_FILE}; serving with the torch backend")
        elif backend != "torch":
            raise ModelError(f"unknown backend {backend!r}", hint="use 'onnxruntime' or 'torch'")
        detector = self.load_detector(art)
        return TorchRunner(detector.net, art.label_map)

    def pretrained_runner(self, spec: ModelSpec, backend: Backend = "torch") -> Runner:
        """The COCO-pretrained model as is (deployable models only): 80 COCO classes."""
        if not spec.deployable:
            raise ModelError(
                f"{spec.model_id} is not deployable as is (its pretrained weights cover only the "
                "backbone)",
                hint="fine-tune it first with `boxtune train`, or pick a deployable model from "
                "`boxtune models list`",
            )
        if backend == "onnxruntime":
            notice(f"{spec.model_id} has no ONNX export; using the torch backend")
        model = build_torchvision(spec.architecture, COCO_NUM_CLASSES, spec.image_size)
        load_coco_weights(model, resolve_weights(spec))
        net = TorchvisionNet(model, spec.architecture, spec.image_size, label_offset=0)
        label_map = coco_label_map()
        lookup = np.full(COCO_NUM_CLASSES, -1, dtype=np.int64)
        for index, category_id in enumerate(label_map.category_ids):
            lookup[category_id] = index
        return TorchRunner(net, label_map, class_lookup=lookup)

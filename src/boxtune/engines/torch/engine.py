"""The torch engine: builds networks from catalog specs and rebuilds them from artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from boxtune.artifacts import Artifact
from boxtune.catalog import ModelSpec, coco_categories, resolve_weights
from boxtune.engines.base import (
    CheckpointRole,
    Engine,
    Init,
    QuantizedModel,
    Runner,
    check_create_arguments,
    framework_imports,
)
from boxtune.engines.torch import BACKENDS, INT8_BACKEND, fall_back_to_torch
from boxtune.engines.torch.onnx_runner import INT8_ONNX_FILE, ONNX_FILE, OnnxRunner
from boxtune.errors import HyperparameterError, ModelError
from boxtune.labels import LabelMap

if TYPE_CHECKING:
    from boxtune.engines.torch.detector import TorchDetector

# torch itself is imported only where a network is built or trained: serving an artifact's
# model.onnx takes ONNX Runtime and numpy alone (the slim `boxtune[serve]` install). Imports
# under _torch_imports() say how to install torch when it is missing.
_torch_imports = partial(framework_imports, "torch", "torch")


def coco_label_map() -> LabelMap:
    return LabelMap.from_categories(coco_categories())


def _no_head_to_keep(spec: ModelSpec, reason: str) -> ModelError:
    return ModelError(
        f"reinitialize_top_layer=False keeps the pretrained class head of {spec.model_id}, but "
        f"there is none that fits: {reason}",
        where="reinitialize_top_layer",
        hint="use reinitialize_top_layer=Auto (a new head for your classes when fine-tuning a "
        "catalog model); False keeps the head of an artifact in incremental training, and of a "
        "COCO-pretrained model when every class of yours is a COCO class (same name)",
    )


def _pretrained_coco_ids(spec: ModelSpec, init: str, label_map: LabelMap) -> list[int]:
    """The COCO category of each of ``label_map``'s classes, matched by name, for keeping a
    COCO-pretrained class head; a ModelError says why it cannot be kept."""
    if init == "random":
        raise _no_head_to_keep(spec, "the run starts from random weights (init='random')")
    if spec.weights.describes != "detector":
        raise _no_head_to_keep(
            spec, f"its pretrained weights cover the {spec.weights.describes} only"
        )
    by_name = {name.lower(): category_id for category_id, name in coco_categories().items()}
    missing = [name for name in label_map.names if name.lower() not in by_name]
    if missing:
        raise _no_head_to_keep(
            spec,
            f"its pretrained head predicts the 80 COCO classes, and {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not one of them",
        )
    return [by_name[name.lower()] for name in label_map.names]


class TorchEngine(Engine):
    name = "torch"
    backends = BACKENDS
    derived_backends = (INT8_BACKEND,)
    libraries = ("torch", "torchvision", "onnx", "onnxruntime", "safetensors")

    def seed(self, seed: int) -> None:
        with _torch_imports():
            import torch

        torch.manual_seed(seed)

    def resolve_device(self, device: str) -> str:
        with _torch_imports():
            import torch

        if device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        try:
            torch.device(device)
        except (RuntimeError, ValueError) as exc:
            raise HyperparameterError(
                f"unknown device {device!r} ({exc})",
                where="device",
                hint="use auto, cpu, cuda or cuda:N",
            ) from exc
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise HyperparameterError(
                f"device={device} but this torch sees no CUDA GPU",
                where="device",
                hint="use device=auto (the CPU here) or install a CUDA build of torch",
            )
        return device

    def checkpoint_name(self, role: CheckpointRole) -> str:
        with _torch_imports():
            from boxtune.engines.torch.checkpoint import CHECKPOINT_SUFFIX

        return f"{role}{CHECKPOINT_SUFFIX}"

    def create(
        self,
        spec: ModelSpec,
        label_map: LabelMap,
        *,
        init: Init = "pretrained",
        reinitialize_head: bool = True,
        device: str = "cpu",
        image_size: int | None = None,
        weights: str | Path | None = None,
    ) -> TorchDetector:
        with _torch_imports():
            from boxtune.engines.torch.architecture import (
                EFFICIENTDET_LITE0,
                TorchArchitecture,
                build_network,
            )
            from boxtune.engines.torch.detector import TorchDetector

        check_create_arguments(init, label_map)
        # Keeping the pretrained head is honoured or refused by name, never silently ignored.
        keep = None if reinitialize_head else _pretrained_coco_ids(spec, init, label_map)
        arch = TorchArchitecture(
            name=spec.architecture,
            image_size=image_size or spec.image_size,
            num_classes=len(label_map),
            pretrained_freezing=init == "pretrained",
        )
        pretrained = resolve_weights(spec, weights) if init == "pretrained" else None
        if arch.name == EFFICIENTDET_LITE0:
            net = build_network(arch, backbone_weights=pretrained)
        else:
            net = build_network(arch, coco_weights=pretrained, keep_coco_classes=keep)
        return TorchDetector(
            net, arch, label_map, model_id=spec.model_id, family=spec.family, device=device
        )

    def load_detector(self, artifact: Artifact, *, device: str = "cpu") -> TorchDetector:
        with _torch_imports():
            from boxtune.engines.torch.architecture import TorchArchitecture, build_network
            from boxtune.engines.torch.checkpoint import WEIGHTS_FILE, load_weights
            from boxtune.engines.torch.detector import TorchDetector

        arch = TorchArchitecture.from_manifest(artifact.manifest, str(artifact.directory))
        net = build_network(arch)
        load_weights(net, artifact.file(WEIGHTS_FILE))
        return TorchDetector(
            net,
            arch,
            artifact.label_map,
            model_id=artifact.model_id,
            family=artifact.family,
            device=device,
        )

    def load_runner(self, artifact: Artifact, backend: str | None = None) -> Runner:
        """ONNX Runtime when the artifact has a model.onnx (its int8 twin by default when it
        has one: `boxtune export --quantize int8` made it for serving), else torch; asking for
        onnxruntime explicitly where there is none warns."""
        chosen = self.check_backend(backend)
        int8_path = artifact.optional_file(INT8_ONNX_FILE)
        if chosen == INT8_BACKEND or (backend is None and int8_path is not None):
            if int8_path is None:
                raise ModelError(
                    f"{artifact.directory} has no {INT8_ONNX_FILE} (the int8 model)",
                    where="--backend",
                    hint="write an artifact with it: `boxtune export --model ARTIFACT "
                    "--quantize int8 --output NEW_ARTIFACT`, or use --backend onnxruntime",
                )
            return OnnxRunner(
                int8_path, artifact.image_size, artifact.label_map, backend=INT8_BACKEND
            )
        if chosen == "onnxruntime":
            onnx_path = artifact.optional_file(ONNX_FILE)
            if onnx_path is not None:
                return OnnxRunner(onnx_path, artifact.image_size, artifact.label_map)
            if backend is not None:
                fall_back_to_torch(f"{artifact.directory} has no {ONNX_FILE}")
        with _torch_imports():
            from boxtune.engines.torch.runners import TorchRunner

        return TorchRunner(self.load_detector(artifact).net, artifact.label_map)

    def quantize_int8(
        self, artifact: Artifact, images: Sequence[np.ndarray], directory: Path
    ) -> QuantizedModel:
        from boxtune.engines.torch.quantize import quantize_artifact

        return quantize_artifact(artifact, images, directory)

    def pretrained_runner(self, spec: ModelSpec, backend: str | None = None) -> Runner:
        """The COCO-pretrained model as is (deployable models only): 80 COCO classes."""
        if not spec.deployable:
            raise ModelError(
                f"{spec.model_id} is not deployable as is (its pretrained weights cover only the "
                "backbone)",
                hint="fine-tune it first with `boxtune train`, or pick a deployable model from "
                "`boxtune models list`",
            )
        with _torch_imports():
            from boxtune.engines.torch.runners import TorchRunner
            from boxtune.engines.torch.tv_models import (
                COCO_NUM_CLASSES,
                TorchvisionNet,
                build_torchvision,
                load_coco_weights,
            )

        if backend is not None and self.check_backend(backend) != "torch":
            fall_back_to_torch(f"{spec.model_id} has no ONNX export")
        model = build_torchvision(spec.architecture, COCO_NUM_CLASSES, spec.image_size)
        load_coco_weights(model, resolve_weights(spec))
        net = TorchvisionNet(model, spec.architecture, spec.image_size, label_offset=0)
        label_map = coco_label_map()
        lookup = np.full(COCO_NUM_CLASSES, -1, dtype=np.int64)
        for index, category_id in enumerate(label_map.category_ids):
            lookup[category_id] = index
        return TorchRunner(net, label_map, class_lookup=lookup)

"""TorchDetector: the trainable side of the torch engine, for any network it builds.

A network here is an ``nn.Module`` with ``losses(images, targets)``, ``detect(images)``,
``new_modules()`` (what `train_only_top_layer` trains), ``frozen_modules()`` (frozen even in
full fine-tuning) and ``reset_classes(n)``; it takes uint8 ``[B, 3, S, S]`` tensors. The
framework-free loader batches (numpy ``[B, S, S, 3]``) are converted here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from boxtune.detections import Detections
from boxtune.engines.base import Detector, OptimizerSettings, Runner
from boxtune.engines.torch.architecture import TorchArchitecture
from boxtune.engines.torch.checkpoint import (
    WEIGHTS_FILE,
    load_checkpoint_file,
    save_checkpoint_file,
    save_weights,
)
from boxtune.engines.torch.efficientdet import EfficientDetLite
from boxtune.engines.torch.onnx_export import export_onnx
from boxtune.engines.torch.onnx_runner import ONNX_FILE
from boxtune.engines.torch.optimizers import build_optimizer
from boxtune.engines.torch.tv_models import TorchvisionNet
from boxtune.errors import ModelError
from boxtune.labels import LabelMap

DEFAULT_GRADIENT_CLIP_NORM = 10.0  # until configure_optimizer sets the run's own
_CHECKPOINT_FORMAT = 1


def _is_norm_with_stats(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def images_to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 numpy ``[B, S, S, 3]`` (the loader's batches) -> uint8 tensor ``[B, 3, S, S]``."""
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        raise ModelError(
            f"expected a uint8 numpy batch [B, S, S, 3], got {type(images).__name__} "
            f"{np.shape(images)}",
            hint="pass batches from boxtune.data.make_loader",
        )
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)


def targets_to_tensors(targets: list[dict], device: torch.device) -> list[dict]:
    return [
        {
            **target,
            "boxes": torch.as_tensor(target["boxes"], dtype=torch.float32, device=device).reshape(
                -1, 4
            ),
            "labels": torch.as_tensor(target["labels"], dtype=torch.int64, device=device).reshape(
                -1
            ),
        }
        for target in targets
    ]


class TorchDetector(Detector):
    engine = "torch"

    def __init__(
        self,
        net: nn.Module,
        arch: TorchArchitecture,
        label_map: LabelMap,
        *,
        model_id: str,
        family: str,
        device: str = "cpu",
    ):
        self.net = net.to(device)
        self.arch = arch
        self.model_id = model_id
        self.family = family
        self.label_map = label_map
        self.image_size = int(net.image_size)
        self.device = torch.device(device)
        self.optimizer: torch.optim.Optimizer | None = None
        self.gradient_clip_norm = DEFAULT_GRADIENT_CLIP_NORM
        self.head_only = False
        self._frozen_norms: list[nn.Module] = []
        self._pending_optimizer_state: dict | None = None
        self.set_trainable(False)

    # -- description ---------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.label_map)

    def architecture(self) -> dict:
        return self.arch.to_json()

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(
            p.numel() for p in self.net.parameters() if p.requires_grad or not trainable_only
        )

    # -- training setup ------------------------------------------------------------------------
    def set_trainable(self, head_only: bool) -> None:
        """head_only: only the modules the pretrained weights do not cover train (for the
        default model the new neck and heads; for torchvision detectors their heads); every
        other parameter is frozen and every batch norm outside them keeps its statistics.

        Full fine-tuning still keeps the network's ``frozen_modules()`` frozen (the default
        model's pretrained stem and first blocks)."""
        head = {id(m) for module in self.net.new_modules() for m in module.modules()}
        always = self.net.frozen_modules()
        frozen_always = {id(m) for module in always for m in module.modules()}
        trainable: set[int] = set()
        for module in self.net.modules():
            is_head = id(module) in head
            if (head_only and not is_head) or id(module) in frozen_always:
                continue
            trainable.update(id(p) for p in module.parameters(recurse=False))
        for param in self.net.parameters():
            param.requires_grad_(id(param) in trainable)
        self._frozen_norms = [
            m
            for m in self.net.modules()
            if _is_norm_with_stats(m)
            and (id(m) in frozen_always or (head_only and id(m) not in head))
        ]
        self.head_only = head_only
        self.optimizer = None

    def reinitialize_head(self) -> None:
        """A new, randomly initialised class predictor for this label map's classes."""
        self.net.reset_classes(self.num_classes)
        self.net.to(self.device)
        self.optimizer = None

    def configure_optimizer(self, settings: OptimizerSettings) -> list[str]:
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer, ignored = build_optimizer(params, settings)
        self.gradient_clip_norm = float(settings.gradient_clip_norm)
        if self.gradient_clip_norm <= 0:  # 0 means "no clipping" (the hyperparameter's doc)
            self.gradient_clip_norm = math.inf
        if self._pending_optimizer_state is not None:
            self.optimizer.load_state_dict(self._pending_optimizer_state)
            self._pending_optimizer_state = None
        return ignored

    def set_learning_rate(self, lr: float) -> None:
        for group in self._require_optimizer().param_groups:
            group["lr"] = lr

    def _require_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            raise ModelError(
                "no optimizer configured",
                hint="call configure_optimizer(hyperparameters) after set_trainable()",
            )
        return self.optimizer

    def _train_mode(self) -> None:
        self.net.train()
        for norm in self._frozen_norms:
            norm.eval()

    # -- steps ---------------------------------------------------------------------------------
    def train_step(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        """One step. A non-finite loss or gradient skips the update (weights stay intact) and
        is returned as is (NaN/inf), for the trainer to stop on."""
        optimizer = self._require_optimizer()
        self._train_mode()
        losses = self.net.losses(
            images_to_tensor(images, self.device), targets_to_tensors(targets, self.device)
        )
        values = {k: float(v.detach()) for k, v in losses.items()}
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(values["loss"]):
            return values
        losses["loss"].backward()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        # gradient_clip_norm <= 0 means no clipping; the norm is still measured and returned.
        max_norm = self.gradient_clip_norm if self.gradient_clip_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        values["grad_norm"] = grad_norm
        if not math.isfinite(grad_norm):
            optimizer.zero_grad(set_to_none=True)
            values["loss"] = float("nan")
            return values
        optimizer.step()
        return values

    @torch.no_grad()
    def validation_losses(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        if isinstance(self.net, TorchvisionNet):
            # torchvision computes losses only in training mode: keep every BN frozen instead.
            self.net.train()
            for module in self.net.modules():
                if _is_norm_with_stats(module):
                    module.eval()
        else:
            self.net.eval()
        losses = self.net.losses(
            images_to_tensor(images, self.device), targets_to_tensors(targets, self.device)
        )
        return {k: float(v) for k, v in losses.items()}

    @torch.no_grad()
    def predict_batch(self, images: np.ndarray) -> list[Detections]:
        self.net.eval()
        return self.net.detect(images_to_tensor(images, self.device))

    # -- persistence ---------------------------------------------------------------------------
    def save_checkpoint(self, path: Path, extra: dict) -> None:
        payload = {
            "format": _CHECKPOINT_FORMAT,
            "model_id": self.model_id,
            "category_ids": list(self.label_map.category_ids),
            "head_only": self.head_only,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "extra": extra,
        }
        save_checkpoint_file(payload, Path(path))

    def load_checkpoint(self, path: Path) -> dict:
        payload = load_checkpoint_file(Path(path))
        if payload.get("model_id") != self.model_id or payload.get("category_ids") != list(
            self.label_map.category_ids
        ):
            raise ModelError(
                f"the checkpoint is for {payload.get('model_id')} with categories "
                f"{payload.get('category_ids')}, not {self.model_id} with "
                f"{list(self.label_map.category_ids)}",
                where=str(path),
                hint="resume with the same model_id and dataset, or start a new output dir",
            )
        self.net.load_state_dict(payload["model"])
        if payload.get("optimizer") is not None:
            if self.optimizer is not None:
                self.optimizer.load_state_dict(payload["optimizer"])
            else:
                self._pending_optimizer_state = payload["optimizer"]
        return payload.get("extra", {})

    def export(self, directory: Path) -> list[str]:
        directory = Path(directory)
        metadata = {"model_id": self.model_id, "num_classes": str(self.num_classes)}
        save_weights(self.net, directory / WEIGHTS_FILE, metadata)
        names = [WEIGHTS_FILE]
        if isinstance(self.net, EfficientDetLite):
            export_onnx(self.net, self.image_size, directory / ONNX_FILE)
            names.append(ONNX_FILE)
        return names

    def runner(self, backend: str | None = None) -> Runner:
        from boxtune.engines.torch.runners import make_runner

        return make_runner(self.net, self.label_map, backend)

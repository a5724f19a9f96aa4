"""The default model: EfficientNet-Lite0 backbone + light PAN (P3-P6, 64 ch) + shared heads.

Input: uint8 or float 0..255 images [B, 3, S, S]; ImageNet normalisation happens inside, so the
exported ONNX graph takes raw pixels. Output: class logits [B, A, C] and box deltas [B, A, 4]
for the A anchors of :func:`~boxtune.engines.torch.anchors.make_anchors`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from boxtune.detections import Detections
from boxtune.engines.torch.anchors import level_counts, make_anchors
from boxtune.engines.torch.backbone import EfficientNetLite0Backbone
from boxtune.engines.torch.decoding import PYRAMID_STRIDES, PostprocessConfig, postprocess
from boxtune.engines.torch.head import SharedHead
from boxtune.engines.torch.loss import detection_loss
from boxtune.engines.torch.neck import LitePAN

STRIDES = PYRAMID_STRIDES  # the backbone's FEATURE_STRIDES, then the neck's extra level
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class EfficientDetLite(nn.Module):
    def __init__(
        self,
        num_classes: int,
        image_size: int = 320,
        backbone_weights: Path | None = None,
        channels: int = 64,
        head_depth: int = 2,
        freeze_early_layers: bool | None = None,
    ):
        super().__init__()
        self.image_size = image_size
        # Default: freeze them when they hold ImageNet weights; from artifacts, the engine decides.
        self.freeze_early_layers = (
            backbone_weights is not None if freeze_early_layers is None else freeze_early_layers
        )
        self.backbone = EfficientNetLite0Backbone(image_size, backbone_weights)
        self.neck = LitePAN(self.backbone.out_channels, channels)
        self.strides = STRIDES
        self.head = SharedHead(num_classes, channels, head_depth, num_levels=len(self.strides))
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        # Not persistent: derived from constants, so they never enter the weights file.
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        self.register_buffer("anchors", make_anchors(image_size, self.strides), persistent=False)
        self.anchors_array = self.anchors.numpy()  # for the numpy post-processing
        self.level_counts = level_counts(image_size, self.strides)
        # Decode/NMS settings (score floor, pre-NMS top-k, max detections); not weights.
        self.postprocess_config = PostprocessConfig()

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (images.float() - self.pixel_mean) / self.pixel_std
        return self.head(self.neck(self.backbone(x)))

    def losses(self, images: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        logits, deltas = self(images)
        return detection_loss(logits, deltas, self.anchors, self.level_counts, targets)

    def detect(
        self, images: torch.Tensor, config: PostprocessConfig | None = None
    ) -> list[Detections]:
        logits, deltas = self(images)
        return postprocess(
            logits.float().cpu().numpy(),
            deltas.float().cpu().numpy(),
            self.anchors_array,
            self.image_size,
            config or self.postprocess_config,
        )

    def reset_classes(self, num_classes: int) -> None:
        self.head.reset_classes(num_classes)

    def frozen_modules(self) -> list[nn.Module]:
        """Frozen even in full fine-tuning: the pretrained backbone's first stages."""
        return self.backbone.early_layers() if self.freeze_early_layers else []

    def new_modules(self) -> list[nn.Module]:
        """Everything not covered by the ImageNet weights: what `train_only_top_layer` trains."""
        return [self.neck, self.head]

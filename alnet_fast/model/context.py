"""Lite R-ASPP context module (Howard et al., MobileNetV3), with a global-average-pool gate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNReLU


class LiteRASPP(nn.Module):
    """relu(BN(conv1x1(x))) * hardsigmoid(conv1x1(mean_hw(x))).

    x: [N, in_channels, H, W] -> [N, out_channels, H, W].
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.feature = ConvBNReLU(in_channels, out_channels, 1)
        self.gate = nn.Conv2d(in_channels, out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.hardsigmoid(self.gate(x.mean(dim=(2, 3), keepdim=True)))
        return self.feature(x) * gate

"""RepVGG-A1-style encoder: five stages, each opening with a stride-2 block."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import RepVGGBlock


class RepVGGEncoder(nn.Module):
    """Stages of RepVGG blocks; stage i outputs ``widths[i]`` channels at stride ``2 ** (i + 1)``.

    x: [N, in_channels, H, W] -> list of 5 features, F0 [N, widths[0], H/2, W/2] ... F4 [N, widths[4], H/32, W/32]
    (sizes rounded up for inputs that are not multiples of 32).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], depths: tuple[int, ...]):
        super().__init__()
        stages = []
        for width, depth in zip(widths, depths):
            blocks = [RepVGGBlock(in_channels, width, stride=2)]
            blocks += [RepVGGBlock(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

"""Training-time building blocks: conv+BN(+ReLU) and the multi-branch RepVGG block."""

from __future__ import annotations

import torch
from torch import nn


class ConvBN(nn.Sequential):
    """Bias-free k x k convolution followed by BatchNorm (padding k // 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)


class ConvBNReLU(ConvBN):
    """ConvBN followed by ReLU; folds into one conv + bias + ReLU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


class RepVGGBlock(nn.Module):
    """relu(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x)), the identity branch only when shapes allow.

    x: [N, in_channels, H, W] -> [N, out_channels, ceil(H / stride), ceil(W / stride)].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv3x3 = ConvBN(in_channels, out_channels, 3, stride)
        self.conv1x1 = ConvBN(in_channels, out_channels, 1, stride)
        self.identity = nn.BatchNorm2d(out_channels) if in_channels == out_channels and stride == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(x) + self.conv1x1(x)
        if self.identity is not None:
            y = y + self.identity(x)
        return torch.relu(y)

"""A-Decoder: asymmetric fusion of encoder features F1..F3 with the context features.

See docs/architecture.md for how the paper's Eq. 1-3 are read here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBNReLU


def upsample_add(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Bilinear (align_corners=False) resize of x to skip's H x W, plus skip.

    x: [N, C, h, w], skip: [N, C, H, W] -> [N, C, H, W].
    """
    return F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip


class ADecoder(nn.Module):
    """Top-down fusion: context (stride 32, 1x1) -> F3 (stride 16, 1x1) -> F2 (stride 8, 3x3) -> F1 (stride 4, 3x3),
    each added after a bilinear upsample; a 3x3 fusion conv and a 1x1 classifier at stride 4.

    Returns logits [N, num_classes, H/4, W/4] and the branch features a training loss may supervise:
    ``"low"`` (the fused stride-4 features before the fusion conv) and ``"context"`` (the projected
    context at stride 32).
    """

    def __init__(self, feature_channels: tuple[int, int, int], context_channels: int, width: int,
                 num_classes: int):
        super().__init__()
        c1, c2, c3 = feature_channels
        self.low = ConvBNReLU(c1, width, 3)
        self.mid = ConvBNReLU(c2, width, 3)
        self.high = ConvBNReLU(c3, width, 1)
        self.context = ConvBNReLU(context_channels, width, 1)
        self.fuse = ConvBNReLU(width, width, 3)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, context: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ctx = self.context(context)
        x = upsample_add(ctx, self.high(f3))
        x = upsample_add(x, self.mid(f2))
        low = upsample_add(x, self.low(f1))
        return self.classifier(self.fuse(low)), {"low": low, "context": ctx}

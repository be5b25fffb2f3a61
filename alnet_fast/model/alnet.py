"""AL-Net (Du et al., 2022): RepVGG encoder + Lite R-ASPP + A-Decoder, the multi-branch training model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ALNetConfig
from .context import LiteRASPP
from .decoder import ADecoder
from .encoder import RepVGGEncoder


class ALNet(nn.Module):
    """x: [N, in_channels, H, W] -> logits [N, num_classes, H, W] (any H, W; multiples of 32 run exactly)."""

    def __init__(self, config: ALNetConfig | None = None):
        super().__init__()
        self.config = config or ALNetConfig()
        c = self.config
        self.encoder = RepVGGEncoder(c.in_channels, c.widths, c.depths)
        self.context = LiteRASPP(c.widths[4], c.context_channels)
        self.decoder = ADecoder((c.widths[1], c.widths[2], c.widths[3]), c.context_channels,
                                c.decoder_channels, c.num_classes)

    def forward_with_branches(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits at the input size and the decoder branch features (for auxiliary training losses)."""
        _, f1, f2, f3, f4 = self.encoder(x)
        logits, branches = self.decoder(f1, f2, f3, self.context(f4))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False), branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_branches(x)[0]

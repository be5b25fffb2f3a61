"""Training-only auxiliary heads on the A-Decoder's two branches (for the self-adjusting loss).

The heads live in this wrapper, never in ALNet: checkpoints and the folded inference graph only ever
see ``wrapper.model``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model import ALNet

BRANCHES = ("low", "context")


class AuxiliaryHeads(nn.Module):
    """ALNet plus a 1x1 classifier on each decoder branch ("low" at stride 4, "context" at stride 32).

    x: [N, in_channels, H, W] -> (logits [N, K, H, W], {branch: logits [N, K, H, W]}), branch logits
    bilinearly resized to the input size.
    """

    def __init__(self, model: ALNet):
        super().__init__()
        self.model = model
        width, classes = model.config.decoder_channels, model.config.num_classes
        self.heads = nn.ModuleDict({name: nn.Conv2d(width, classes, 1) for name in BRANCHES})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, features = self.model.forward_with_branches(x)
        branch_logits = {name: F.interpolate(head(features[name]), size=x.shape[-2:], mode="bilinear",
                                             align_corners=False)
                         for name, head in self.heads.items()}
        return logits, branch_logits

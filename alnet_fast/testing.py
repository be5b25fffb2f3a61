"""Helpers for tests and benchmarks: models whose BatchNorms are not the identity, and mask metrics."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import ALNetConfig
from .model import ALNet


def randomize_batchnorm(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters (in place; returns model).

    Without this a fresh model's BNs are identities and folding errors in their maths go unseen.
    """
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            c = bn.num_features
            bn.running_mean.copy_(0.2 * torch.randn(c, generator=generator))
            bn.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=generator))
            bn.weight.copy_(0.5 + torch.rand(c, generator=generator))
            bn.bias.copy_(0.2 * torch.randn(c, generator=generator))
    return model


def random_alnet(config: ALNetConfig | None = None, seed: int = 0) -> ALNet:
    """An eval-mode ALNet with seeded random weights and random BN statistics."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return randomize_batchnorm(ALNet(config), generator).eval()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks (any shape); 1.0 when both are empty."""
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)

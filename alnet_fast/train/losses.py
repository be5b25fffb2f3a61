"""Training losses: Dice + BCE (the paper's Eq. 4) and the self-adjusting two-branch loss (after SALW-Net).

All losses take logits ``[N, 1, H, W]`` (or ``[N, H, W]``) and binary targets of the same shape, and
return a scalar tensor. Formulas are written out in docs/training.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_SMOOTH = 1.0  # Laplace smoothing: keeps the Dice of an empty prediction on an empty target at 1


def _check_pair(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    if logits.dim() < 2:
        raise ValueError(f"expected a batch [N, ...] of logits, got shape {tuple(logits.shape)}")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """Mean over the batch of 1 - (2 sum(p g) + s) / (sum(p) + sum(g) + s), p = sigmoid(logits).

    logits, target: [N, ...] -> scalar.
    """
    _check_pair(logits, target)
    p = torch.sigmoid(logits).flatten(1)
    g = target.to(p.dtype).flatten(1)
    dice = (2 * (p * g).sum(1) + smooth) / (p.sum(1) + g.sum(1) + smooth)
    return (1 - dice).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L = L_BCE + L_Dice (Eq. 4): mean binary cross-entropy over pixels plus the soft Dice loss.

    logits, target: [N, ...] -> scalar.
    """
    _check_pair(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return bce + soft_dice_loss(logits, target)


def branch_error(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How far a branch's output is from the labels: mean |sigmoid(logits) - g|, detached. -> scalar in [0, 1]."""
    _check_pair(logits, target)
    return (torch.sigmoid(logits.detach()) - target.to(logits.dtype)).abs().mean()


def self_adjusting_weights(errors: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """w_i = e_i / sum_j e_j: the branch further from the labels gets the larger weight.

    errors: [B] non-negative -> [B] weights summing to 1 (uniform when every error is 0).
    """
    if errors.dim() != 1 or errors.numel() == 0:
        raise ValueError(f"errors must be a non-empty 1-D tensor, got shape {tuple(errors.shape)}")
    if (errors < 0).any():
        raise ValueError(f"branch errors must be >= 0, got {errors.tolist()}")
    total = errors.sum()
    if total <= eps:
        return torch.full_like(errors, 1.0 / errors.numel())
    return errors / total


def self_adjusting_loss(logits: torch.Tensor, branch_logits: dict[str, torch.Tensor], target: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L(main) + sum_i w_i L(branch_i), w = self_adjusting_weights(branch errors), recomputed per call.

    logits: [N, 1, H, W]; branch_logits: name -> [N, 1, H, W] (auxiliary heads, already at the target size);
    target: [N, 1, H, W]. -> (scalar loss, {name: weight}).
    """
    names = sorted(branch_logits)
    if not names:
        raise ValueError("self_adjusting_loss needs at least one branch")
    errors = torch.stack([branch_error(branch_logits[n], target) for n in names])
    weights = self_adjusting_weights(errors)
    loss = bce_dice_loss(logits, target)
    for name, w in zip(names, weights):
        loss = loss + w * bce_dice_loss(branch_logits[name], target)
    return loss, {n: float(w) for n, w in zip(names, weights)}

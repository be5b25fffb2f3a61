"""Test-time augmentation: average the probabilities of an image's flipped (and transposed) copies.

A transform is (transpose, flip_h, flip_w) applied in that order to x [N, C, H, W]; its inverse undoes them
in reverse order. Square inputs use the whole dihedral group of the square (8 transforms: the 4 flip
combinations, with and without transpose); other inputs the 4 flips, which keep H x W. All copies of a
batch go through the network as one batch of G * N images (G = 4 or 8), so TTA costs one larger forward
pass rather than G serial calls. The group is closed under composition, so the averaged output of a
flipped input is the flip of the averaged output: TTA predictions are flip invariant by construction.
"""

from __future__ import annotations

from itertools import product
from typing import Callable

import torch

from .outputs import logits_to_probs

Transform = tuple[bool, bool, bool]  # (transpose H<->W, flip H, flip W)


def transforms(square: bool) -> list[Transform]:
    """The TTA group: 8 transforms for square inputs, the 4 flips otherwise; the identity first."""
    return [(t, fh, fw) for t in ((False, True) if square else (False,)) for fh, fw in product((False, True), repeat=2)]


def apply(x: torch.Tensor, t: Transform) -> torch.Tensor:
    """x: [..., H, W] -> transformed x: transpose, then flip H, then flip W."""
    transpose, flip_h, flip_w = t
    if transpose:
        x = x.transpose(-1, -2)
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    return x.flip(dims) if dims else x


def invert(y: torch.Tensor, t: Transform) -> torch.Tensor:
    """Undo ``apply(., t)`` on y [..., H', W']: flips first (each is its own inverse), then the transpose."""
    transpose, flip_h, flip_w = t
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    y = y.flip(dims) if dims else y
    return y.transpose(-1, -2) if transpose else y


def tta_probabilities(logits: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Mean probabilities over the TTA group, computed in one call of ``logits``.

    logits: normalised batch [M, C, H, W] -> logits [M, K, H, W]; x: [N, C, H, W]
    -> [N, H, W] (one class: mean sigmoid) or [N, K, H, W] (mean softmax).
    """
    group = transforms(x.shape[-1] == x.shape[-2])
    n = x.shape[0]
    out = logits(torch.cat([apply(x, t) for t in group]))
    probs = logits_to_probs(out)
    return torch.stack([invert(probs[i * n:(i + 1) * n], t) for i, t in enumerate(group)]).mean(0)

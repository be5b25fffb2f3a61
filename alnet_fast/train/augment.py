"""Paired image/mask augmentation: random crop, flips, diagonal flip (transpose) and translation.

Every random choice comes from an explicit ``torch.Generator``, so a seed fixes the whole stream.
image: [C, H, W] float, mask: [1, H, W] float; both get exactly the same geometric transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    """Which transforms to draw: each flip with probability 1/2, a shift of up to ``max_shift`` pixels."""

    hflip: bool = True
    vflip: bool = True
    diagonal: bool = True
    max_shift: int = 16


def _randint(high: int, gen: torch.Generator) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(0, high + 1, (1,), generator=gen))


def _coin(gen: torch.Generator) -> bool:
    return bool(torch.rand((), generator=gen) < 0.5)


def pad_to_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad (replicate when too small to reflect) the bottom/right of x [C, H, W] to at least size x size."""
    ph, pw = max(0, size - x.shape[-2]), max(0, size - x.shape[-1])
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x[None], (0, pw, 0, ph), mode=mode)[0]


def random_crop(image: torch.Tensor, mask: torch.Tensor, size: int, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A size x size window at a uniform position (images smaller than size are padded first)."""
    image, mask = pad_to_size(image, size), pad_to_size(mask, size)
    top = _randint(image.shape[-2] - size, gen)
    left = _randint(image.shape[-1] - size, gen)
    return image[:, top:top + size, left:left + size], mask[:, top:top + size, left:left + size]


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift x [C, H, W] by (dy, dx) pixels, filling the exposed border by reflection. Same shape out."""
    h, w = x.shape[-2:]
    py, px = min(abs(dy), h - 1), min(abs(dx), w - 1)
    padded = F.pad(x[None], (px, px, py, py), mode="reflect")[0]
    top, left = py - max(-py, min(py, dy)), px - max(-px, min(px, dx))
    return padded[:, top:top + h, left:left + w]


def augment(image: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, aug: Augmentation = Augmentation()
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw flips, a diagonal flip (square inputs only) and a shift; apply them to both tensors."""
    dims = []
    if aug.hflip and _coin(gen):
        dims.append(-1)
    if aug.vflip and _coin(gen):
        dims.append(-2)
    if dims:
        image, mask = image.flip(dims), mask.flip(dims)
    if aug.diagonal and image.shape[-1] == image.shape[-2] and _coin(gen):
        image, mask = image.transpose(-1, -2), mask.transpose(-1, -2)
    if aug.max_shift > 0:
        dy = _randint(2 * aug.max_shift, gen) - aug.max_shift
        dx = _randint(2 * aug.max_shift, gen) - aug.max_shift
        image, mask = translate(image, dy, dx), translate(mask, dy, dx)
    return image.contiguous(), mask.contiguous()

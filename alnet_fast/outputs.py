"""What the network's output becomes: padding its input to the output stride, logits to probabilities,
probabilities to masks. Pure functions shared by whole-image and tiled inference."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom/right of x [N, C, H, W] to multiples of ``multiple`` (reflect when it can, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def logits_to_probs(logits: torch.Tensor) -> torch.Tensor:
    """[N, K, H, W] logits -> probabilities: sigmoid for one class ([N, H, W]), softmax over K otherwise."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)


def probs_to_mask(probs: np.ndarray, num_classes: int) -> np.ndarray:
    """Probabilities -> uint8 labels: prob > 0.5 for one class ([..., H, W]), argmax over classes otherwise."""
    if num_classes == 1:
        return (probs > 0.5).astype(np.uint8)
    return probs.argmax(axis=-3).astype(np.uint8)

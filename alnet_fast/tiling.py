"""Large images by overlapping tiles, blended with a linear ramp.

An image of H x W is normalised once as a whole (so its intensity scaling is the whole image's), padded
to Hp x Wp (multiples of 32) exactly as the whole-image path pads it, and cut into T x T tiles whose
origins are multiples of 32 and step by T - overlap. Each tile's logits are weighted by a ramp that
rises over the overlap from each tile edge, summed, and divided by the summed weights.

What "equal to whole-image inference" means here:

- When the padded image fits in one tile (Hp <= T and Wp <= T), the tiled path *is* the whole-image
  path: identical logits and masks, bit for bit.
- Otherwise tiled logits are not identical, and cannot be: the Lite R-ASPP gate multiplies the context
  features by hardsigmoid(conv(global mean of the stage-4 features)), and a tile's mean is not the
  image's; zero padding at tile borders also differs from the neighbouring pixels the whole image has.
  The blend keeps seams away from tile edges; masks agree with whole-image masks up to pixels near the
  decision threshold (tests/test_tiling.py measures Dice on a non-trivial mask).

Peak memory, beyond the model's own activations for one batch of ``batch_size`` tiles of T x T: the
normalised and padded image (2 x C x Hp x Wp float32), the logit and weight accumulators
((K + 1) x Hp x Wp float32) and the probabilities (K x H x W float32). For a 2166 x 3188 RGB
dermoscopy image with one class: about 2 x 84 + 2 x 28 + 28 = 250 MB, whatever its size in tiles; the
network's activations depend on T and the batch size only.
"""

from __future__ import annotations

import numpy as np
import torch

from .outputs import pad_to_multiple


def tile_origins(size: int, tile: int, step: int, multiple: int = 32) -> list[int]:
    """Origins of tiles of ``tile`` pixels covering [0, ceil(size / multiple) * multiple), stepping by
    ``step``; all multiples of ``multiple``. The last tile is pulled back to end at the padded size."""
    padded = -(-size // multiple) * multiple
    if padded <= tile:
        return [0]
    count = -(-(padded - tile) // step) + 1
    return sorted({min(i * step, padded - tile) for i in range(count)})


def ramp(tile: int, overlap: int) -> torch.Tensor:
    """Blending weights along one tile axis: rising linearly over ``overlap`` pixels from each edge, 1 in
    between; never zero, so every pixel has a positive total weight. -> float32 [tile]."""
    if overlap == 0:
        return torch.ones(tile)
    i = torch.arange(tile, dtype=torch.float32) + 0.5
    return torch.clamp(torch.minimum(i, tile - i) / overlap, max=1.0)


def overlap_pixels(tile: int, overlap: float, multiple: int = 32) -> int:
    """The overlap fraction as pixels, rounded to a multiple of ``multiple`` (so tile origins stay aligned)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be a fraction in [0, 1), got {overlap}")
    pixels = int(round(overlap * tile / multiple)) * multiple
    return min(pixels, tile - multiple)


def check_tile(tile: int, multiple: int = 32) -> None:
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 2 * multiple or tile % multiple:
        raise ValueError(f"tile must be an int multiple of {multiple} and at least {2 * multiple}, got {tile!r}")


@torch.inference_mode()
def tiled_logits(segmenter, x: torch.Tensor, tile: int = 512, overlap: float = 0.25) -> torch.Tensor:
    """Blended logits of one normalised image. x: [C, H, W] -> float32 [K, H, W] on CPU.

    segmenter: a Segmenter (its ``logits``, ``config`` and ``batch_size``); the network sees at most
    ``segmenter.batch_size`` tiles of tile x tile pixels at a time. ``Segmenter.predict(img, tile=...)`` is
    how callers reach this.
    """
    multiple = segmenter.config.output_stride
    check_tile(tile, multiple)
    step = tile - overlap_pixels(tile, overlap, multiple)
    h, w = x.shape[-2:]
    ys, xs = tile_origins(h, tile, step, multiple), tile_origins(w, tile, step, multiple)
    if len(ys) == 1 and len(xs) == 1:
        return segmenter.logits(x[None])[0]
    padded = pad_to_multiple(x[None], multiple)[0]
    th, tw = min(tile, padded.shape[-2]), min(tile, padded.shape[-1])
    weight = ramp(th, tile - step if len(ys) > 1 else 0)[:, None] * ramp(tw, tile - step if len(xs) > 1 else 0)
    total = torch.zeros(segmenter.config.num_classes, *padded.shape[-2:])
    weight_sum = torch.zeros(padded.shape[-2:])
    origins = [(y, x0) for y in ys for x0 in xs]
    for start in range(0, len(origins), segmenter.batch_size):
        chunk = origins[start:start + segmenter.batch_size]
        tiles = torch.stack([padded[:, y:y + th, x0:x0 + tw] for y, x0 in chunk])
        for (y, x0), logits in zip(chunk, segmenter.logits(tiles)):
            total[:, y:y + th, x0:x0 + tw] += logits * weight
            weight_sum[y:y + th, x0:x0 + tw] += weight
    return (total / weight_sum)[:, :h, :w]

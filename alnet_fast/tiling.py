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

Tiles are blended row band by row band (``blended_rows``): the logit and weight accumulators hold
(K + 1) x T x Wp float32, and finished rows leave as soon as no tile left starts above them. In memory
(``tiled_probs``) the normalised and padded image (2 x C x Hp x Wp float32) and the probabilities
(K x H x W float32) are held besides; alnet_fast.wsi streams the same bands from a TIFF on disk to a
tiled TIFF on disk, so there only the bands and one batch of tiles are. The network's activations
depend on T and the batch size only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from .outputs import logits_to_probs, pad_to_multiple


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


@dataclass(frozen=True)
class TileGrid:
    """Tiles covering an h x w image padded to multiples of ``multiple``: origins ``ys`` x ``xs`` (row-major
    order), each th x tw pixels; ``weight``: the blending ramp [th, tw]. One tile: the whole image."""

    h: int
    w: int
    th: int
    tw: int
    ys: list[int]
    xs: list[int]
    weight: torch.Tensor

    @property
    def single(self) -> bool:
        return len(self.ys) == 1 and len(self.xs) == 1

    @property
    def origins(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.ys for x in self.xs]


def tile_grid(h: int, w: int, tile: int, overlap: float, multiple: int) -> TileGrid:
    """The tiles and blending weights for an h x w image (see the module docstring)."""
    check_tile(tile, multiple)
    step = tile - overlap_pixels(tile, overlap, multiple)
    ys, xs = tile_origins(h, tile, step, multiple), tile_origins(w, tile, step, multiple)
    th, tw = min(tile, -(-h // multiple) * multiple), min(tile, -(-w // multiple) * multiple)
    weight = ramp(th, tile - step if len(ys) > 1 else 0)[:, None] * ramp(tw, tile - step if len(xs) > 1 else 0)
    return TileGrid(h, w, th, tw, ys, xs, weight)


RegionReader = Callable[[int, int, int, int], torch.Tensor]
"""read(y0, y1, x0, x1) -> the normalised image padded to multiples of the output stride, rows y0:y1 and
columns x0:x1: [C, y1 - y0, x1 - x0]."""


@torch.inference_mode()
def blended_rows(segmenter, grid: TileGrid, read: RegionReader) -> Iterator[tuple[int, torch.Tensor]]:
    """Blended logits, yielded as bands of finished rows top to bottom: (first row, float32 [K, n, w]).

    segmenter: a Segmenter (its ``logits``, ``config`` and ``batch_size``); the network sees at most
    ``segmenter.batch_size`` tiles at a time. Only the rows the current tiles overlap are held: the logit
    and weight accumulators are (K + 1) x tile x padded width float32, whatever the image's height.
    A row is finished, divided by its summed weights and yielded once no later tile starts above it.
    """
    if grid.single:  # the whole-image path, bit for bit
        yield 0, segmenter.logits(read(0, grid.h, 0, grid.w)[None])[0]
        return
    k, width = segmenter.config.num_classes, -(-grid.w // segmenter.config.output_stride) * segmenter.config.output_stride
    top, total, weight_sum = 0, torch.zeros(k, 0, width), torch.zeros(0, width)  # accumulators hold rows top..
    origins = grid.origins
    for start in range(0, len(origins), segmenter.batch_size):
        chunk = origins[start:start + segmenter.batch_size]
        tiles = torch.stack([read(y, y + grid.th, x, x + grid.tw) for y, x in chunk])
        for (y, x), logits in zip(chunk, segmenter.logits(tiles)):
            if y > top:  # rows above y are finished: no tile left starts above y
                yield from _finished(total[:, :y - top], weight_sum[:y - top], top, grid)
                total, weight_sum, top = total[:, y - top:].clone(), weight_sum[y - top:].clone(), y
            grow = y + grid.th - top - weight_sum.shape[0]
            if grow > 0:
                total = torch.cat([total, total.new_zeros(k, grow, width)], 1)
                weight_sum = torch.cat([weight_sum, weight_sum.new_zeros(grow, width)], 0)
            total[:, y - top:y - top + grid.th, x:x + grid.tw] += logits * grid.weight
            weight_sum[y - top:y - top + grid.th, x:x + grid.tw] += grid.weight
    yield from _finished(total, weight_sum, top, grid)


def _finished(total: torch.Tensor, weight_sum: torch.Tensor, top: int, grid: TileGrid):
    """(top, blended logits [K, n, w]) for finished accumulator rows, cropped to the image; none past it."""
    rows = min(weight_sum.shape[0], grid.h - top)
    if rows > 0:
        yield top, (total[:, :rows] / weight_sum[:rows])[:, :, :grid.w]


def tiled_probs(segmenter, x: torch.Tensor, tile: int = 512, overlap: float = 0.25) -> np.ndarray:
    """Probabilities of one normalised image by blended tiles. x: [C, H, W] -> float32 [H, W] or [K, H, W].

    ``Segmenter.predict(img, tile=...)`` is how callers reach this; alnet_fast.wsi streams the same bands
    from a file on disk to a file on disk, so both give the same values.
    """
    multiple = segmenter.config.output_stride
    grid = tile_grid(*x.shape[-2:], tile, overlap, multiple)
    padded = x if grid.single else pad_to_multiple(x[None], multiple)[0]
    k = segmenter.config.num_classes
    probs = np.empty(((k,) if k > 1 else ()) + tuple(x.shape[-2:]), np.float32)
    for top, logits in blended_rows(segmenter, grid, lambda y0, y1, x0, x1: padded[:, y0:y1, x0:x1]):
        probs[..., top:top + logits.shape[-2], :] = band_probs(logits)
    return probs


def band_probs(logits: torch.Tensor) -> np.ndarray:
    """Blended logits [K, n, w] -> float32 probabilities [n, w] (one class) or [K, n, w]."""
    return logits_to_probs(logits[None])[0].numpy()

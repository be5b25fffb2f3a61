"""Whole-slide and other very large TIFF/OME-TIFF images, segmented without ever loading them whole.

The input is opened lazily (tifffile ``aszarr``, pyramid level 0 read through zarr): the scaling
statistics come from a regular grid of about ``inputs.STATISTICS_SAMPLE`` pixels (the same grid the
in-memory path uses, so the same bounds), each tile is decoded, normalised and padded only when the
network needs it, and the blended rows (``tiling.blended_rows``, the blending of ``Segmenter.predict(img,
tile=...)``) go straight into a tiled TIFF on disk. The output therefore equals in-memory tiling wherever
that fits in memory, and the peak memory is set by the tile size, the batch size and the image's width
(the accumulator bands: (K + 1) x tile x width float32), not by its area.

Outputs are tiled (``OUTPUT_TILE`` pixels), zlib-compressed OME-TIFFs, written atomically: the mask
(uint8 [H, W]) and, if asked, the probabilities (float32 [H, W], or [H, W, K] for K classes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .atomic import atomic_path
from .errors import ImageReadError
from .inputs import adapt_channels, normalise, scaling_bounds, statistics_stride, to_chw
from .io import optional_import
from .outputs import pad_to_multiple, probs_to_mask
from .tiling import band_probs, blended_rows, tile_grid

OUTPUT_TILE = 256
STREAM_PIXELS = 1 << 26  # the CLI streams TIFFs with more pixels than this (8192 x 8192) instead of reading them


class LazyTiff:
    """Level 0 of a TIFF/OME-TIFF's first series, decoded region by region. Use as a context manager.

    Axes Y and X, and at most one of S (samples: RGB) or C (channels); other axes must have length 1.
    """

    def __init__(self, path: str | os.PathLike):
        tifffile = optional_import("tifffile", "reading TIFF images lazily")
        zarr = optional_import("zarr", f"reading {str(path)!r} lazily")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"image file {str(self.path)!r} not found")
        try:
            self._tif = tifffile.TiffFile(self.path)
            series = self._tif.series[0]
            self._array = zarr.open(series.aszarr(level=0), mode="r")
            axes = series.levels[0].axes
        except Exception as exc:  # tifffile and zarr raise many types on corrupt files
            raise ImageReadError(f"{str(self.path)!r} is not a readable TIFF image: {exc}") from exc
        extra = [a for a, n in zip(axes, self._array.shape) if a not in "YXSC" and n != 1]
        channel_axes = [a for a in axes if a in "SC"]
        if "Y" not in axes or "X" not in axes or extra or len(channel_axes) > 1:
            self.close()
            raise ImageReadError(f"{str(self.path)!r} has axes {axes!r} of shape {self._array.shape}; expected a "
                                 "2-D image (Y, X, and at most one channel axis S or C)")
        self._axes = axes
        self.height, self.width = (self._array.shape[axes.index(a)] for a in "YX")

    def __enter__(self) -> "LazyTiff":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._tif.close()

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """Decoded pixels of rows x cols (slices, steps allowed) -> [h, w] or [h, w, C] in the file's dtype."""
        index = tuple(rows if a == "Y" else cols if a == "X" else slice(None) if a in "SC" else 0
                      for a in self._axes)
        kept = [a for a in self._axes if a in "YXSC"]
        return np.moveaxis(np.asarray(self._array[index]), [kept.index(a) for a in "YX"], [0, 1])


def is_large_tiff(path: str | os.PathLike) -> bool:
    """True for a TIFF whose first series has more than STREAM_PIXELS pixels (its header only is read);
    False for anything else, unreadable files included (the reader then says what is wrong)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            shape = tif.series[0].levels[0].shape
            axes = tif.series[0].levels[0].axes
    except Exception:  # tifffile raises many types on corrupt files; reading it whole reports them
        return False
    return "Y" in axes and "X" in axes and shape[axes.index("Y")] * shape[axes.index("X")] > STREAM_PIXELS


def segment_tiff(segmenter, path: str | os.PathLike, mask_path: str | os.PathLike,
                 probs_path: str | os.PathLike | None = None, tile: int = 512, overlap: float = 0.25) -> Path:
    """Segment a large TIFF tile by tile, writing the mask (and probabilities) as tiled OME-TIFFs; -> mask_path.

    Equal to ``probs_to_mask(segmenter.predict(image, tile=tile, overlap=overlap))`` on the image read whole
    (and its probabilities), with the image never held whole.
    """
    config = segmenter.config
    with LazyTiff(path) as image:
        h, w = image.height, image.width
        stride = statistics_stride(config.in_channels, h, w)
        sample, dtype_max = to_chw(image.read(slice(None, None, stride), slice(None, None, stride)))
        bounds = scaling_bounds(adapt_channels(sample, config.in_channels), dtype_max, config)
        del sample
        multiple = config.output_stride
        grid = tile_grid(h, w, tile, overlap, multiple)

        def read(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
            raw, _ = to_chw(image.read(slice(y0, min(y1, h)), slice(x0, min(x1, w))))
            x = normalise(raw, dtype_max, config, bounds)
            return x if grid.single else pad_to_multiple(x[None], multiple)[0]

        bands = (band_probs(logits) for _, logits in blended_rows(segmenter, grid, read))
        k = config.num_classes
        if probs_path is None:
            return write_tiled_tiff(mask_path, (probs_to_mask(p, k) for p in bands), (h, w), np.uint8)
        shape = (h, w) if k == 1 else (h, w, k)
        write_tiled_tiff(probs_path, (p if k == 1 else np.moveaxis(p, 0, -1) for p in bands), shape, np.float32)
    with LazyTiff(probs_path) as probs:  # the mask from the probabilities on disk: no second pass of the network
        rows = (probs.read(slice(y, y + OUTPUT_TILE), slice(None)) for y in range(0, h, OUTPUT_TILE))
        masks = (probs_to_mask(p if k == 1 else np.moveaxis(p, -1, 0), k) for p in rows)
        return write_tiled_tiff(mask_path, masks, (h, w), np.uint8)


def write_tiled_tiff(path: str | os.PathLike, bands: Iterable[np.ndarray], shape: tuple[int, ...], dtype,
                     tile: int = OUTPUT_TILE) -> Path:
    """Write row bands ([n, W] or [n, W, K], top to bottom, covering ``shape``) as a tiled, zlib-compressed
    OME-TIFF, atomically; only one row of tiles is held at a time."""
    import tifffile

    axes = "YX" if len(shape) == 2 else "YXS"
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, _tiles(bands, shape, tile), shape=shape, dtype=dtype, tile=(tile, tile),
                         photometric="minisblack", planarconfig="contig" if len(shape) == 3 else None,
                         compression="zlib", ome=True, metadata={"axes": axes})
    return Path(path)


def _tiles(bands: Iterable[np.ndarray], shape: tuple[int, ...], tile: int) -> Iterator[np.ndarray]:
    """Row bands -> tile x tile blocks in row-major order, zero-padded at the right and bottom edges."""
    pending, rows, written = [], 0, 0
    for band in bands:
        pending.append(band)
        rows += band.shape[0]
        while rows >= tile or (rows and written + rows == shape[0]):
            block = np.concatenate(pending)
            yield from _row_of_tiles(block[:tile], shape, tile)
            written += min(tile, rows)
            pending, rows = [block[tile:]], max(0, rows - tile)
    if written != shape[0]:
        raise ValueError(f"bands covered {written} rows of an image of {shape[0]}")


def _row_of_tiles(block: np.ndarray, shape: tuple[int, ...], tile: int) -> Iterator[np.ndarray]:
    for x in range(0, shape[1], tile):
        part = block[:, x:x + tile]
        padded = np.zeros((tile, tile) + tuple(shape[2:]), dtype=block.dtype)
        padded[:part.shape[0], :part.shape[1]] = part
        yield padded

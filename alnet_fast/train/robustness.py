"""Real-world variations of held-out data, for the robustness report (scripts/robustness.py).

Each transform maps a raw sample (image [H, W] any dtype, bool mask [H, W]) to a transformed one; the
intensity ones leave the mask, the geometric ones move it with the image. ``report`` scores a Segmenter
under all of them and returns {row: pooled Dice}.
  identity          the test split as it is
  gamma G           raw values mapped to [0, 1] by the image's min..max, raised to G, mapped back
  noise S           Gaussian noise of std S x (max - min) of the image (seeded)
  blur S            Gaussian blur of sigma S pixels
  scale F           image resized by F (bilinear, antialiased), mask resized the same way (> 1/2)
  crop C            each image cut into C x C tiles segmented one by one (no context beyond the tile)
  sagittal/coronal  brain: the held-out slices of the other two planes (blocks along X / Y, whole slices)
  empty             brain: held-out slices of all three planes without brain; reported as the fraction of
                    their pixels marked brain (0 is right), not as a Dice
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from .augment import gaussian_blur, resize_pair
from .datasets import PLANES, Sample, held_out_slices, load_dataset, read_brain
from .metrics import summarise

GAMMAS = (0.5, 0.7, 1.5, 2.0)
NOISES = (0.05, 0.10, 0.20)
BLURS = (1.0, 2.0)
SCALES = (0.5, 0.75, 1.5, 2.0)
CROPS = (64, 128)
SEED = 0

Transform = Callable[[np.ndarray, np.ndarray], Sample]


def intensity_map(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """fn applied to the image mapped to [0, 1] by its min..max, mapped back; float32 out. image: [H, W]."""
    x = image.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1e-12)
    return (fn((x - lo) / span) * span + lo).astype(np.float32)


def gamma(g: float) -> Transform:
    return lambda image, mask: (intensity_map(image, lambda u: u ** g), mask)


def noise(level: float) -> Transform:
    def transform(image, mask):
        rng = np.random.default_rng(SEED)
        return intensity_map(image, lambda u: u + level * rng.standard_normal(u.shape).astype(np.float32)), mask
    return transform


def blur(sigma: float) -> Transform:
    return lambda image, mask: (gaussian_blur(torch.from_numpy(image.astype(np.float32))[None], sigma)[0].numpy(),
                                mask)


def rescale(factor: float) -> Transform:
    def transform(image, mask):
        size = (round(image.shape[0] * factor), round(image.shape[1] * factor))
        x, m = resize_pair(torch.from_numpy(image.astype(np.float32))[None],
                           torch.from_numpy(mask.astype(np.float32))[None], size)
        return x[0].numpy(), m[0].numpy() > 0
    return transform


def tiles(image: np.ndarray, size: int) -> list[tuple[int, int, np.ndarray]]:
    """(top, left, tile) of the size x size tiles covering image [H, W] (the last row/column may be smaller)."""
    return [(r, c, image[r:r + size, c:c + size]) for r in range(0, image.shape[0], size)
            for c in range(0, image.shape[1], size)]


def evaluate(segmenter, samples: list[Sample], tta: bool, crop: int | None = None) -> float:
    """Pooled Dice of the segmenter on samples; crop: segment each image as independent crop x crop tiles."""
    if crop is None:
        preds = segmenter.segment([image for image, _ in samples], tta=tta)
    else:
        preds = []
        for image, _ in samples:
            parts = tiles(image, crop)
            pred = np.zeros(image.shape, np.uint8)
            for (r, c, part), mask in zip(parts, segmenter.segment([p for _, _, p in parts], tta=tta)):
                pred[r:r + part.shape[0], c:c + part.shape[1]] = mask
            preds.append(pred)
    return summarise(preds, [mask for _, mask in samples]).pooled["dice"]


def transform_rows() -> dict[str, Transform]:
    """The grid of transforms (module docstring), by row name."""
    rows = {"identity": lambda image, mask: (image, mask)}
    rows.update({f"gamma {g}": gamma(g) for g in GAMMAS})
    rows.update({f"noise {s:.2f}": noise(s) for s in NOISES})
    rows.update({f"blur {s}": blur(s) for s in BLURS})
    rows.update({f"scale {f}": rescale(f) for f in SCALES})
    return rows


def report(segmenter, dataset: str, data: str | os.PathLike | None = None, tta: bool = False,
           log: Callable[[str], None] = print) -> dict[str, float]:
    """{row name: pooled Dice} of ``segmenter`` on the data set's test split (and, for the brain, the other
    planes' held-out slices, and "empty": the fraction of held-out non-brain pixels marked brain); each row
    goes to ``log`` as it is measured."""
    test = load_dataset(dataset, data)["test"]
    results = {}
    for name, transform in transform_rows().items():
        results[name] = evaluate(segmenter, [transform(*sample) for sample in test], tta)
        log(f"{name:>12}: Dice {results[name]:.4f}")
    for size in CROPS:
        results[f"crop {size}"] = evaluate(segmenter, test, tta, crop=size)
        log(f"{f'crop {size}':>12}: Dice {results[f'crop {size}']:.4f}")
    if dataset == "brain":
        volume, brain = read_brain(data)
        for plane in ("sagittal", "coronal"):
            results[plane] = evaluate(segmenter, held_out_slices(volume, brain, plane), tta)
            log(f"{plane:>12}: Dice {results[plane]:.4f}")
        empty = [image for plane in PLANES for image, _ in held_out_slices(volume, brain, plane, with_brain=False)]
        marked = segmenter.segment(empty, tta=tta)
        results["empty"] = float(sum(int(m.sum()) for m in marked) / sum(m.size for m in marked))
        log(f"{'empty':>12}: {results['empty']:.5f} of {len(empty)} held-out slices without brain marked brain "
              f"({sum(bool(m.any()) for m in marked)} slices with any)")
    return results

"""Robustness report: Dice of a checkpoint on its held-out data under a grid of real-world variations.

Usage (after `python scripts/fetch_data.py`):
  python scripts/robustness.py CHECKPOINT --dataset nuclei|brain [--data data] [--tta] [--json out.json]

Each row transforms the held-out images (and, for geometric rows, their masks the same way), segments them
through the shipped path (alnet_fast.load -> folded model -> Segmenter.segment, torch backend, CPU) and
prints the Dice of all held-out pixels pooled (for the brain: the held-out slices as one volume).
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

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import alnet_fast
from alnet_fast.atomic import atomic_path
from alnet_fast.train import load_dataset, summarise
from alnet_fast.train.augment import gaussian_blur, resize_pair
from alnet_fast.train.datasets import PLANES, Sample, held_out_slices, read_brain

REPO = Path(__file__).resolve().parent.parent
GAMMAS = (0.5, 0.7, 1.5, 2.0)
NOISES = (0.05, 0.10, 0.20)
BLURS = (1.0, 2.0)
SCALES = (0.5, 0.75, 1.5, 2.0)
CROPS = (64, 128)
SEED = 0


def intensity_map(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """fn applied to the image mapped to [0, 1] by its min..max, mapped back; float32 out. image: [H, W]."""
    x = image.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    span = max(hi - lo, 1e-12)
    return (fn((x - lo) / span) * span + lo).astype(np.float32)


def gamma(g: float):
    return lambda image, mask: (intensity_map(image, lambda u: u ** g), mask)


def noise(level: float):
    def transform(image, mask):
        rng = np.random.default_rng(SEED)
        return intensity_map(image, lambda u: u + level * rng.standard_normal(u.shape).astype(np.float32)), mask
    return transform


def blur(sigma: float):
    return lambda image, mask: (gaussian_blur(torch.from_numpy(image.astype(np.float32))[None], sigma)[0].numpy(),
                                mask)


def rescale(factor: float):
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


def transform_rows() -> dict[str, Callable[[np.ndarray, np.ndarray], Sample]]:
    rows = {"identity": lambda image, mask: (image, mask)}
    rows.update({f"gamma {g}": gamma(g) for g in GAMMAS})
    rows.update({f"noise {s:.2f}": noise(s) for s in NOISES})
    rows.update({f"blur {s}": blur(s) for s in BLURS})
    rows.update({f"scale {f}": rescale(f) for f in SCALES})
    return rows


def report(checkpoint: Path, dataset: str, data: Path, tta: bool) -> dict[str, float]:
    """{row name: Dice} (and, for the brain, "empty": the fraction of non-brain pixels marked brain)."""
    segmenter = alnet_fast.load(checkpoint, backend="torch", device="cpu")
    test = load_dataset(dataset, data)["test"]
    results = {}
    for name, transform in transform_rows().items():
        results[name] = evaluate(segmenter, [transform(*sample) for sample in test], tta)
        print(f"{name:>12}: Dice {results[name]:.4f}", flush=True)
    for size in CROPS:
        results[f"crop {size}"] = evaluate(segmenter, test, tta, crop=size)
        print(f"{f'crop {size}':>12}: Dice {results[f'crop {size}']:.4f}", flush=True)
    if dataset == "brain":
        volume, brain = read_brain(data)
        for plane in ("sagittal", "coronal"):
            results[plane] = evaluate(segmenter, held_out_slices(volume, brain, plane), tta)
            print(f"{plane:>12}: Dice {results[plane]:.4f}", flush=True)
        empty = [image for plane in PLANES for image, _ in held_out_slices(volume, brain, plane, with_brain=False)]
        marked = segmenter.segment(empty, tta=tta)
        results["empty"] = float(sum(int(m.sum()) for m in marked) / sum(m.size for m in marked))
        print(f"{'empty':>12}: {results['empty']:.5f} of {len(empty)} held-out slices without brain marked brain "
              f"({sum(bool(m.any()) for m in marked)} slices with any)", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--dataset", required=True, choices=("nuclei", "brain"))
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--tta", action="store_true", help="segment with test-time augmentation")
    parser.add_argument("--json", type=Path, default=None, help="also write {row: Dice} as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = report(args.checkpoint, args.dataset, args.data, args.tta)
    if args.json is not None:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

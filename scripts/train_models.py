"""Train the bundled models reproducibly on the real data and ship them with their measured test Dice.

Usage (after `alnet-fast fetch-data`):
  python scripts/train_models.py nuclei [--data data] [--runs runs]
For each data set: train on its train split (best epoch picked on val; for the brain, then a second stage,
FINE_TUNES, that fine-tunes the first stage's fp16 model on a wider training set), evaluate the held-out test split
through the shipped path (fp16 weights -> alnet_fast.load -> folded model -> Segmenter.segment), then write
alnet_fast/weights/NAME.safetensors (fp16; metadata "test_dice": Dice of all held-out pixels pooled -- for the
brain, the Dice of the held-out slices as one volume -- and "test_metrics_per_image": mean ± std per image). For nuclei also write the test
quadrant and its mask as the bundled sample (alnet_fast/data/nuclei.tif, nuclei_mask.png); for brain, every
4th held-out slice to tests/data/brain_test_slices.npz.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import alnet_fast
from alnet_fast.train import (DATASET_CONFIGS, DATASET_MODALITIES, Augmentation, Summary, TrainSettings, load_dataset,
                              summarise, train)
from alnet_fast.train.datasets import training_set_metadata

REPO = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = REPO / "alnet_fast" / "weights"
SAMPLE_DIR = REPO / "alnet_fast" / "data"
BRAIN_SLICES = REPO / "tests" / "data" / "brain_test_slices.npz"
BRAIN_SLICE_STEP = 4  # ship every 4th held-out brain slice (8 slices, ~170 KB) for tests/test_bundled.py

# The recipe of each shipped model (paper defaults: Adam 5e-3, x0.95 per epoch, batch 4, Dice + BCE).
# nuclei: the default Augmentation (zoom, flips, shifts, gamma, contrast, brightness, noise, blur, context
# cuts). brain: the first recipe (flips, diagonal flip, shifts; axial slices), then FINE_TUNES' stage (the
# brain candidates trained on three planes from scratch lost held-out axial Dice: docs/training.md).
RECIPES = {"nuclei": TrainSettings(epochs=40, steps_per_epoch=32, crop=128, seed=0),
           "brain": TrainSettings(epochs=40, steps_per_epoch=32, crop=192, seed=0,
                                  augmentation=Augmentation.geometric())}
# Training-set options per data set (load_dataset; a brain model records them in its metadata).
DATASET_OPTIONS = {"nuclei": {}, "brain": {"planes": ("axial",), "empty": False}}
# A second stage: fine-tune the first stage's model, rounded to fp16 as it would ship, on a wider training set
# (brain: all three planes and slices without brain, the axial slices listed twice, flips, shifts and noise
# at a tenth of the first stage's learning rate).
FINE_TUNES = {"brain": (TrainSettings(epochs=30, steps_per_epoch=32, crop=192, seed=0, lr=5e-4,
                                      augmentation=Augmentation.geometric(noise_p=0.1)),
                        {"planes": ("axial", "coronal", "sagittal"), "empty": True, "axial_repeat": 2})}
SOURCES = {"nuclei": "stardist 0.9.2 wheel data/images/img2d.tif + mask2d.tif (DSB2018/BBBC038, CC0); "
                     "test = bottom-right 256x256 quadrant",
           "brain": "Debian mricron-data ch2.nii.gz + ch2bet.nii.gz (BSD-3); test = blocks of 8 axial brain slices, "
                    "block b % 5 == 2"}


def evaluate(checkpoint: Path, samples) -> Summary:
    """Metrics of the folded model loaded from ``checkpoint`` on raw (image, mask) samples."""
    segmenter = alnet_fast.load(checkpoint, backend="torch", device="cpu")
    return summarise(segmenter.segment([image for image, _ in samples]), [mask for _, mask in samples])


def write_sample(name: str, image: np.ndarray, mask: np.ndarray) -> None:
    import tifffile

    SAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(SAMPLE_DIR / f"{name}.tif", image, compression="zlib")
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(SAMPLE_DIR / f"{name}_mask.png", optimize=True)


def write_slices(path: Path, samples) -> None:
    """Held-out slices as a compressed npz: images [S, H, W] in their dtype, masks bit-packed (mask_shape)."""
    masks = np.stack([mask for _, mask in samples])
    np.savez_compressed(path, images=np.stack([image for image, _ in samples]), masks=np.packbits(masks),
                        mask_shape=np.array(masks.shape))


def build(name: str, data: Path, runs: Path, weights_dir: Path, options: dict, settings: TrainSettings,
          fine_tune: bool) -> None:
    config = DATASET_CONFIGS[name]
    splits = load_dataset(name, data, **options)
    start = time.perf_counter()
    result = train(splits["train"], splits["val"], runs / name, config, settings, resume="auto")
    metadata = {"dataset": SOURCES[name]}
    if fine_tune and name in FINE_TUNES:
        first = runs / name / "first_stage.safetensors"
        alnet_fast.save(alnet_fast.load(result.best_path, fold=False).model, first, dtype=torch.float16)
        metadata.update(first_stage=f"{settings!r}; {json.dumps(training_set_metadata(options))}; best epoch "
                                    f"{result.best_epoch}, val Dice {result.best_val_dice:.4f}")
        settings, options = FINE_TUNES[name]
        splits = load_dataset(name, data, **options)
        result = train(splits["train"], splits["val"], runs / f"{name}-fine-tune", config, settings,
                       resume="auto", init=first)
        metadata.update(init="the first stage (first_stage), in fp16")
    minutes = (time.perf_counter() - start) / 60
    model = alnet_fast.load(result.best_path, fold=False).model
    weights_dir.mkdir(parents=True, exist_ok=True)
    shipped = weights_dir / f"{name}.safetensors"
    metadata.update({"val_dice": f"{result.best_val_dice:.4f}", "epoch": str(result.best_epoch),
                     "recipe": repr(settings), "augmentation": json.dumps(dataclasses.asdict(settings.augmentation)),
                     **DATASET_MODALITIES[name]})
    metadata.update(training_set_metadata(options))  # brain: the training planes, slices without brain
    alnet_fast.save(model, shipped, metadata=metadata, dtype=torch.float16)
    test = evaluate(shipped, splits["test"])
    alnet_fast.save(model, shipped, dtype=torch.float16,
                    metadata={**metadata, "test_dice": f"{test.pooled['dice']:.4f}",
                              "test_metrics_per_image": test.format()})
    print(f"{name}: best epoch {result.best_epoch} (val Dice {result.best_val_dice:.4f}), "
          f"test Dice (all test pixels pooled) {test.pooled['dice']:.4f}, per image {test.format()} over "
          f"{len(test.per_image)} images; trained {minutes:.1f} min in this run; wrote {shipped} "
          f"({shipped.stat().st_size / 1e6:.2f} MB)")
    if weights_dir != WEIGHTS_DIR:  # a candidate model: leave the bundled sample data as they are
        return
    if name == "nuclei":
        write_sample(name, *splits["test"][0])
    else:
        write_slices(BRAIN_SLICES, splits["test"][::BRAIN_SLICE_STEP])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder (default: $ALNET_DATA, else ~/.cache/alnet_fast/data, as alnet-fast fetch-data)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs")
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR,
                        help="where to write NAME.safetensors (default: the bundled weights; a candidate "
                             "elsewhere leaves the bundled sample data untouched)")
    parser.add_argument("--planes", default=None,
                        help="brain: comma-separated training planes (default: the recipe's DATASET_OPTIONS)")
    parser.add_argument("--empty-slices", action="store_true",
                        help="brain: also train on the training-block slices without brain")
    parser.add_argument("--augment", choices=("default", "geometric"), default=None,
                        help="override the recipe's augmentation: the default Augmentation or flips/shifts only")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's number of epochs")
    parser.add_argument("--first-stage-only", action="store_true",
                        help="skip FINE_TUNES' second stage (the options above apply to the first stage)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core CPU, 2 OpenMP threads measured 3-30x "
                             "slower per step than 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name in args.names:
        options = dict(DATASET_OPTIONS[name])
        if name == "brain":
            options.update(planes=tuple(args.planes.split(",")) if args.planes else options["planes"],
                           empty=args.empty_slices or options["empty"])
        settings = RECIPES[name]
        if args.augment is not None:
            augmentation = Augmentation() if args.augment == "default" else Augmentation.geometric()
            settings = dataclasses.replace(settings, augmentation=augmentation)
        if args.epochs is not None:
            settings = dataclasses.replace(settings, epochs=args.epochs)
        build(name, args.data, args.runs, args.weights, options, settings, fine_tune=not args.first_stage_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())

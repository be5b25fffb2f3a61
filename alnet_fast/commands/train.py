"""`alnet-fast train`: train AL-Net on a named real data set or on image/mask file pairs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..config import ALNetConfig
from ..train import DATASET_CONFIGS, DATASET_MODALITIES, TrainSettings, load_dataset, train
from ..train.augment import Augmentation
from ..train.datasets import Sample, training_set_metadata
from ..train.fetch import default_data_dir
from .common import DefaultsHelpFormatter, positive_int, read_pairs


def split_validation(samples: list[Sample], fraction: float) -> tuple[list[Sample], list[Sample]]:
    """The last ceil(fraction * n) samples (at least one) validate; the rest train."""
    if not 0 < fraction < 1:
        raise ValueError(f"--val-fraction must be in (0, 1), got {fraction}")
    if len(samples) < 2:
        raise ValueError("need at least 2 image/mask pairs (one to train, one to validate)")
    n_val = min(len(samples) - 1, max(1, int(np.ceil(fraction * len(samples)))))
    return samples[:-n_val], samples[-n_val:]


def parse_augmentation(items: list[str], max_shift: int) -> Augmentation:
    """``--augment KEY=VALUE`` items -> Augmentation: a probability ``NAME_p=0.3`` or a range ``NAME_range=0.7,1.5``
    (the fields of alnet_fast.train.augment.Augmentation); the others keep their defaults."""
    fields = {f.name: f for f in dataclasses.fields(Augmentation)}
    values: dict = {"max_shift": max_shift}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in fields or key in ("hflip", "vflip", "diagonal", "max_shift"):
            tunable = sorted(k for k in fields if k.endswith(("_p", "_range")))
            raise ValueError(f"--augment {item!r}: expected KEY=VALUE with KEY one of {tunable}")
        try:
            values[key] = tuple(float(v) for v in text.split(",")) if key.endswith("_range") else float(text)
        except ValueError:
            raise ValueError(f"--augment {item!r}: {text!r} is not a number (ranges: LOW,HIGH)") from None
        if key.endswith("_range") and len(values[key]) != 2:
            raise ValueError(f"--augment {item!r}: a range needs two numbers, LOW,HIGH")
    return Augmentation(**values)


def add_parser(subparsers) -> None:
    defaults = TrainSettings()
    p = subparsers.add_parser("train", help="train AL-Net (Dice + BCE, Adam 5e-3, x0.95 per epoch, batch 4)",
                              formatter_class=DefaultsHelpFormatter,
                              description="Train AL-Net; writes OUT/best.safetensors (best validation Dice) "
                                          "and OUT/state.pt (after every epoch, for --resume). A new run refuses "
                                          "an OUT that holds a state.pt; --resume continues it (only --epochs "
                                          "may change). Exit codes: 0 trained, 2 bad arguments or data, "
                                          "130 interrupted (resume with --resume).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=sorted(DATASET_CONFIGS),
                     help="a real data set, downloaded first with `alnet-fast fetch-data`")
    src.add_argument("--images", nargs="+", metavar="FILE",
                     help="training image files (with --masks, in the same order)")
    p.add_argument("--masks", nargs="+", metavar="FILE", help="mask files for --images (nonzero is foreground)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of --images (the last ones) held out to validate")
    p.add_argument("--data", type=Path, default=None, metavar="DIR",
                   help=f"data folder for --dataset ($ALNET_DATA, else {default_data_dir()})")
    p.add_argument("--in-channels", type=int, default=1, help="model input channels for --images")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="epochs to train in all")
    p.add_argument("--steps-per-epoch", type=positive_int, default=defaults.steps_per_epoch,
                   help="optimizer steps (batches of random crops) per epoch")
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, help="crops per batch")
    p.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate")
    p.add_argument("--lr-decay", type=float, default=defaults.lr_decay, help="learning rate multiplier per epoch")
    p.add_argument("--crop", type=positive_int, default=defaults.crop, help="square training crop size in pixels")
    p.add_argument("--max-shift", type=int, default=defaults.augmentation.max_shift,
                   help="largest random translation in pixels")
    p.add_argument("--augment", nargs="+", default=[], metavar="KEY=VALUE",
                   help="augmentation probabilities and ranges, e.g. gamma_p=0.5 noise_range=0,0.1 scale_p=0 "
                        "(fields of alnet_fast.train.augment.Augmentation; docs/training.md has the defaults)")
    p.add_argument("--geometric-only", action="store_true",
                   help="flips, diagonal flip and shifts only (the first bundled models' recipe)")
    p.add_argument("--planes", default="axial",
                   help="--dataset brain: comma-separated planes to train on (axial,coronal,sagittal)")
    p.add_argument("--empty-slices", action="store_true",
                   help="--dataset brain: also train on the training-block slices without brain")
    p.add_argument("--axial-repeat", type=positive_int, default=1, metavar="K",
                   help="--dataset brain: list the axial training slices K times (sampled K times as often as "
                        "with --planes alone)")
    p.add_argument("--loss", choices=("bce_dice", "self_adjusting"), default=defaults.loss,
                   help="bce_dice: Dice + BCE; self_adjusting: adds auxiliary heads weighted during training")
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="fine-tune: start from this multi-branch checkpoint (path or bundled model name, e.g. "
                        "brain) instead of random weights; its config must match the data set's")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of weights and crops (runs are repeatable)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in OUT/state.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar and no per-epoch lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.dataset:
        options = ({"planes": tuple(args.planes.split(",")), "empty": args.empty_slices,
                    "axial_repeat": args.axial_repeat} if args.dataset == "brain" else {})
        splits = load_dataset(args.dataset, args.data, **options)
        train_samples, val_samples, config = splits["train"], splits["val"], DATASET_CONFIGS[args.dataset]
        metadata = {**DATASET_MODALITIES[args.dataset], **training_set_metadata(options)}
    else:
        if not args.masks:
            raise ValueError("--images needs --masks")
        train_samples, val_samples = split_validation(read_pairs(args.images, args.masks), args.val_fraction)
        config = ALNetConfig(in_channels=args.in_channels, num_classes=1)
        metadata = {}
    if args.geometric_only and args.augment:
        raise ValueError("--geometric-only and --augment exclude each other")
    augmentation = (Augmentation.geometric(max_shift=args.max_shift) if args.geometric_only
                    else parse_augmentation(args.augment, args.max_shift))
    settings = TrainSettings(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                             lr=args.lr, lr_decay=args.lr_decay, crop=args.crop, loss=args.loss, seed=args.seed,
                             augmentation=augmentation)
    result = train(train_samples, val_samples, args.out, config, settings, resume=args.resume,
                   progress=not args.no_progress, metadata=metadata, init=args.init)
    print(f"best epoch {result.best_epoch}: validation Dice {result.best_val_dice:.4f}; wrote {result.best_path}")
    return 0

"""`alnet-fast eval`: Dice, IoU and pixel accuracy of a checkpoint, per image and mean ± std."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..api import load
from ..atomic import atomic_path
from ..train import DATASET_CONFIGS, load_dataset, summarise
from ..train.fetch import default_data_dir
from .common import DefaultsHelpFormatter, read_pairs, require_model


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score a model against ground-truth masks (Dice, IoU, accuracy)",
                              formatter_class=DefaultsHelpFormatter,
                              description="Segment images with MODEL (a checkpoint or bundled model name) "
                                          "and compare with masks: per image and mean ± std. Exit codes: 0 "
                                          "scored, 2 bad arguments, model, data or device.")
    p.add_argument("model", help="checkpoint path or bundled model name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=sorted(DATASET_CONFIGS),
                     help="a real data set (`alnet-fast fetch-data`), scored on --split")
    src.add_argument("--images", nargs="+", metavar="FILE", help="image files (with --masks, in the same order)")
    p.add_argument("--masks", nargs="+", metavar="FILE", help="mask files for --images (nonzero is foreground)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="which split of --dataset")
    p.add_argument("--data", type=Path, default=None, metavar="DIR",
                   help=f"data folder for --dataset ($ALNET_DATA, else {default_data_dir()})")
    p.add_argument("--backend", default="auto", help="auto, torch, triton or native")
    p.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the metrics as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dataset:
        samples = load_dataset(args.dataset, args.data)[args.split]
        names = [f"{args.dataset}/{args.split}/{i}" for i in range(len(samples))]
    else:
        if not args.masks:
            raise ValueError("--images needs --masks")
        samples = read_pairs(args.images, args.masks)
        names = list(args.images)
    require_model(args.model)
    segmenter = load(args.model, backend=args.backend, device=args.device)
    summary = summarise(segmenter.segment([image for image, _ in samples]), [mask for _, mask in samples])
    for name, row in zip(names, summary.per_image):
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    print(f"mean ± std over {len(samples)} images: {summary.format()}")
    print("pooled over all pixels: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.pooled.items()))
    if args.json is not None:
        report = {"images": dict(zip(names, summary.per_image)), "mean": summary.mean, "std": summary.std,
                  "pooled": summary.pooled}
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    return 0

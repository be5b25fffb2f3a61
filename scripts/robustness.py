"""Robustness report: Dice of a checkpoint on its held-out data under a grid of real-world variations.

Usage (after `python scripts/fetch_data.py`):
  python scripts/robustness.py CHECKPOINT --dataset nuclei|brain [--data data] [--tta] [--json out.json]

Segments through the shipped path (alnet_fast.load -> folded model -> Segmenter.segment, torch backend, CPU)
and prints the Dice of all held-out pixels pooled per transform (for the brain: the held-out slices as one
volume). The rows are described in alnet_fast/train/robustness.py.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch

import alnet_fast
from alnet_fast.atomic import atomic_path
from alnet_fast.train.robustness import report

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--dataset", required=True, choices=("nuclei", "brain"))
    parser.add_argument("--data", type=Path, default=None,
                        help="data folder (default: $ALNET_DATA, else ~/.cache/alnet_fast/data, as alnet-fast fetch-data)")
    parser.add_argument("--tta", action="store_true", help="segment with test-time augmentation")
    parser.add_argument("--json", type=Path, default=None, help="also write {row: Dice} as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    segmenter = alnet_fast.load(args.checkpoint, backend="torch", device="cpu")
    results = report(segmenter, args.dataset, args.data, args.tta, log=functools.partial(print, flush=True))
    if args.json is not None:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

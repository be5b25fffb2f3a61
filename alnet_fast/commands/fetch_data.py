"""``alnet-fast fetch-data``: download the real training data (PyPI and Debian only), SHA-256 verified."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..train.fetch import FETCHERS, default_data_dir, fetch


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fetch-data", help="download the training data sets (checksummed) into a cache folder",
        description="Download the real data sets that `train --dataset` and `eval --dataset` read: nuclei "
                    "(stardist 0.9.2 wheel from PyPI, CC0; needs pip) and brain (Debian mricron-data, BSD-3; "
                    "needs apt-get and dpkg-deb). Every file is checked against its SHA-256; files already "
                    "present and verified are kept.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"data sets to fetch: {', '.join(sorted(FETCHERS))} (default: all)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help=f"data folder (default: $ALNET_DATA, else $XDG_CACHE_HOME/alnet_fast/data; "
                             f"here {default_data_dir()}); pass the same folder to train/eval --data")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    root = fetch(args.names or sorted(FETCHERS), args.out)
    print(f"alnet-fast fetch-data: data in {str(root)!r}")
    return 0

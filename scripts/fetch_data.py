"""Kept for old instructions: the fetcher is ``alnet-fast fetch-data`` (alnet_fast.train.fetch) now.

Usage: python scripts/fetch_data.py [NAME...] [--out DIR]   (same as `alnet-fast fetch-data`)
"""

import sys

from alnet_fast.cli import main

if __name__ == "__main__":
    sys.exit(main(["fetch-data", *sys.argv[1:]]))

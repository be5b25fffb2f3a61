"""The ``alnet-fast`` command: one subcommand per module in alnet_fast.commands.

Each command module defines ``add_parser(subparsers)`` (registering its arguments and setting
``func``) and is listed in COMMANDS. User errors print one line and exit 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .atomic import remove_unfinished

COMMANDS = ("segment", "export", "train", "eval", "fetch-data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alnet-fast", description="AL-Net medical image segmentation")
    parser.add_argument("--version", action="version", version=f"alnet_fast {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"alnet_fast.commands.{name.replace('-', '_')}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        remove_unfinished()  # a Ctrl-C between an atomic writer's steps can outrun its own cleanup
        print("alnet-fast: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError, ImportError) as exc:
        print(f"alnet-fast {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

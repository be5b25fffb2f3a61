"""``alnet-fast export --onnx OUT.onnx [--model NAME|PATH]``: the folded graph as ONNX (dynamic N, H, W)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..export import DEFAULT_OPSET, export_onnx
from .common import add_model_argument, require_model


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="export the folded model (ONNX)",
        description="Export the folded inference graph to ONNX with dynamic batch, height and width. The "
                    "graph takes normalised images [N, C, H, W] and returns logits [N, K, H, W]; the "
                    "model's config (input normalisation) is stored in the ONNX metadata.")
    add_model_argument(parser)
    parser.add_argument("--onnx", required=True, type=Path, metavar="OUT", help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model

    require_model(args.model)
    if args.onnx.suffix.lower() != ".onnx":
        raise ValueError(f"--onnx {str(args.onnx)!r}: the output file must end in .onnx")
    path = export_onnx(load_model(args.model), args.onnx, opset=args.opset)
    print(f"alnet-fast export: wrote {str(path)!r} ({path.stat().st_size / 1e6:.1f} MB, opset {args.opset}, "
          "dynamic batch/height/width)")
    return 0

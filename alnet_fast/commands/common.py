"""What several commands share: the --model argument and loading it, dtype names, argument types, and
reading image/mask pairs."""

from __future__ import annotations

import argparse


from ..api import DTYPES
from ..checkpoint import require_model
from ..io import read_image
from ..train.datasets import Sample

DEFAULT_MODEL = "nuclei"


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with "(default: X)" after every option whose default is a value (not None or False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """``--model NAME|PATH``, shared by every command that runs a model."""
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"bundled model name or checkpoint path (default: {DEFAULT_MODEL})")


def load_segmenter(args: argparse.Namespace):
    """The Segmenter ``args`` ask for; one-line errors for a missing model or an unusable backend."""
    from .. import load

    require_model(args.model)
    return load(**load_arguments(args))


def load_arguments(args: argparse.Namespace) -> dict:
    """``alnet_fast.load``'s keyword arguments for the --model, --backend, --device, --dtype and --batch-size flags."""
    return dict(source=args.model, backend=args.backend, device=args.device, dtype=DTYPES[args.dtype],
                batch_size=args.batch_size)


def read_pairs(images: list[str], masks: list[str]) -> list[Sample]:
    """(raw image, boolean mask) for each image file and the mask file at the same position."""
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} image files but {len(masks)} mask files; pass them in matching order")
    return [(read_image(i), read_image(m) != 0) for i, m in zip(images, masks)]

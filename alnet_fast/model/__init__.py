"""The multi-branch AL-Net training model and its building blocks."""

from .alnet import ALNet
from .blocks import ConvBN, ConvBNReLU, RepVGGBlock
from .context import LiteRASPP
from .decoder import ADecoder, upsample_add
from .encoder import RepVGGEncoder

__all__ = ["ALNet", "ADecoder", "ConvBN", "ConvBNReLU", "LiteRASPP", "RepVGGBlock", "RepVGGEncoder",
           "upsample_add"]

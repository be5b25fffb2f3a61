"""The op table's specification: for each op, its argument checks and its output shape, written once.

Everything that needs an op's rules reads them here: ``OpTable``'s public methods (checks), the torch custom
ops' fake implementations (shapes), the native plan's recorder (shapes), every backend's output allocation
and the Triton launchers (``conv_out_size``). Shapes are [N, C, H, W]; ``size`` is (H, W).

- ``conv3x3_bias_relu(x, weight, bias, stride, relu)``: x [N, Cin, H, W], weight [Cout, Cin, 3, 3],
  bias [Cout] -> [N, Cout, ceil(H / stride), ceil(W / stride)]; padding 1.
- ``conv1x1_bias_relu(x, weight, bias, relu)``: weight [Cout, Cin, 1, 1] -> [N, Cout, H, W].
- ``lraspp_gate(x, w_feat, b_feat, w_gate, b_gate)``: relu(conv1x1(x; w_feat, b_feat)) *
  hardsigmoid(conv1x1(mean_hw(x); w_gate, b_gate)) -> [N, Cout, H, W].
- ``upsample_add(x, skip)``: bilinear (align_corners=False) resize of x [N, C, h, w] to skip's
  H x W, plus skip [N, C, H, W] -> [N, C, H, W].
- ``resize_bilinear(x, size)``: bilinear (align_corners=False) resize to size=(H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import checks


def conv_out_size(size: int, stride: int) -> int:
    """Output extent of a 3x3 / padding-1 (or 1x1 / padding-0) conv along one axis: ceil(size / stride)."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class OpSpec:
    """check(*args): raises TypeError / ValueError for arguments the op cannot take; out_shape(*args): the
    output's [N, C, H, W]. Both take the op's own arguments (tensors may be meta or fake)."""

    name: str
    check: Callable[..., None]
    out_shape: Callable[..., tuple[int, int, int, int]]


def _conv3x3_shape(x, weight, bias, stride=1, relu=True):
    n, _, h, w = x.shape
    return n, weight.shape[0], conv_out_size(h, stride), conv_out_size(w, stride)


def _conv1x1_shape(x, weight, bias, relu=True):
    n, _, h, w = x.shape
    return n, weight.shape[0], h, w


def _lraspp_shape(x, w_feat, b_feat, w_gate, b_gate):
    n, _, h, w = x.shape
    return n, w_feat.shape[0], h, w


def _upsample_add_shape(x, skip):
    return x.shape[0], x.shape[1], skip.shape[2], skip.shape[3]


def _resize_shape(x, size):
    return x.shape[0], x.shape[1], size[0], size[1]


OP_SPECS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("conv3x3_bias_relu", lambda x, weight, bias, stride=1, relu=True: checks.check_conv(x, weight, bias, 3, stride),
           _conv3x3_shape),
    OpSpec("conv1x1_bias_relu", lambda x, weight, bias, relu=True: checks.check_conv(x, weight, bias, 1),
           _conv1x1_shape),
    OpSpec("lraspp_gate", checks.check_lraspp_gate, _lraspp_shape),
    OpSpec("upsample_add", checks.check_upsample_add, _upsample_add_shape),
    OpSpec("resize_bilinear", checks.check_resize, _resize_shape),
)}

OP_NAMES = tuple(OP_SPECS)


def out_shape(op: str, *args) -> tuple[int, int, int, int]:
    """[N, C, H, W] of ``op``'s output for these arguments."""
    return tuple(OP_SPECS[op].out_shape(*args))

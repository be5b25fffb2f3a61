"""The public op surface: the folded graph's fused ops as functions with a ``backend`` argument.

    y = alnet_fast.ops.conv3x3_bias_relu(x, weight, bias, stride=2, backend="triton")

x is [N, C, H, W] in any memory format; weights are in PyTorch's conv layout ([Cout, Cin, k, k]), biases
[Cout]; outputs are channels_last. backend is "auto" or a registered name ("torch", "triton", "native");
one that cannot run on x's device and dtype raises ``alnet_fast.BackendUnavailable`` with the reason,
and bad arguments raise TypeError / ValueError, both before any kernel launches.

Each op is a torch custom op (``alnet_fast::<name>``, with a fake implementation giving the output's
shape and strides), so torch.compile and torch.export trace through it as one node. The backend is
resolved when the op runs (a traced graph keeps the name it was given, "auto" included).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .backends import select_backend
from .backends.base import OpTable
from .backends.spec import OP_SPECS, out_shape


@functools.cache
def _table(backend: str, device: torch.device, dtype: torch.dtype) -> OpTable:
    """The op table ``backend`` ("auto" or a name) means on device with dtype, one instance per triple
    (backends cache packed weights on their instance); raises BackendUnavailable with the reason."""
    return select_backend(backend, device, dtype)[0]


def _channels_last(y: Tensor) -> Tensor:
    return y.contiguous(memory_format=torch.channels_last)


def _fake(x: Tensor, op: str, *args) -> Tensor:
    """What ``op`` returns for these arguments, for tracers: channels_last, x's dtype and device."""
    return torch.empty(out_shape(op, x, *args), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)


@torch.library.custom_op("alnet_fast::conv3x3_bias_relu", mutates_args=())
def _conv3x3_bias_relu(x: Tensor, weight: Tensor, bias: Tensor, stride: int, relu: bool, backend: str) -> Tensor:
    ops = _table(backend, x.device, x.dtype)
    return _channels_last(ops.conv3x3_bias_relu(x, weight, bias, stride, relu))


@_conv3x3_bias_relu.register_fake
def _(x, weight, bias, stride, relu, backend):
    return _fake(x, "conv3x3_bias_relu", weight, bias, stride, relu)


@torch.library.custom_op("alnet_fast::conv1x1_bias_relu", mutates_args=())
def _conv1x1_bias_relu(x: Tensor, weight: Tensor, bias: Tensor, relu: bool, backend: str) -> Tensor:
    return _channels_last(_table(backend, x.device, x.dtype).conv1x1_bias_relu(x, weight, bias, relu))


@_conv1x1_bias_relu.register_fake
def _(x, weight, bias, relu, backend):
    return _fake(x, "conv1x1_bias_relu", weight, bias, relu)


@torch.library.custom_op("alnet_fast::lraspp_gate", mutates_args=())
def _lraspp_gate(x: Tensor, w_feat: Tensor, b_feat: Tensor, w_gate: Tensor, b_gate: Tensor, backend: str) -> Tensor:
    ops = _table(backend, x.device, x.dtype)
    return _channels_last(ops.lraspp_gate(x, w_feat, b_feat, w_gate, b_gate))


@_lraspp_gate.register_fake
def _(x, w_feat, b_feat, w_gate, b_gate, backend):
    return _fake(x, "lraspp_gate", w_feat, b_feat, w_gate, b_gate)


@torch.library.custom_op("alnet_fast::upsample_add", mutates_args=())
def _upsample_add(x: Tensor, skip: Tensor, backend: str) -> Tensor:
    return _channels_last(_table(backend, x.device, x.dtype).upsample_add(x, skip))


@_upsample_add.register_fake
def _(x, skip, backend):
    return _fake(x, "upsample_add", skip)


@torch.library.custom_op("alnet_fast::resize_bilinear", mutates_args=())
def _resize_bilinear(x: Tensor, height: int, width: int, backend: str) -> Tensor:
    return _channels_last(_table(backend, x.device, x.dtype).resize_bilinear(x, (height, width)))


@_resize_bilinear.register_fake
def _(x, height, width, backend):
    return _fake(x, "resize_bilinear", (height, width))


def conv3x3_bias_relu(x: Tensor, weight: Tensor, bias: Tensor, stride: int = 1, relu: bool = True,
                      backend: str = "auto") -> Tensor:
    """act(conv3x3(x, weight, padding 1, stride) + bias). x: [N, Cin, H, W], weight: [Cout, Cin, 3, 3],
    bias: [Cout] -> [N, Cout, ceil(H / stride), ceil(W / stride)]; stride 1 or 2; act = ReLU if ``relu``."""
    OP_SPECS["conv3x3_bias_relu"].check(x, weight, bias, stride, relu)
    return _conv3x3_bias_relu(x, weight, bias, stride, relu, backend)


def conv1x1_bias_relu(x: Tensor, weight: Tensor, bias: Tensor, relu: bool = True, backend: str = "auto") -> Tensor:
    """act(conv1x1(x, weight) + bias). x: [N, Cin, H, W], weight: [Cout, Cin, 1, 1] -> [N, Cout, H, W]."""
    OP_SPECS["conv1x1_bias_relu"].check(x, weight, bias, relu)
    return _conv1x1_bias_relu(x, weight, bias, relu, backend)


def lraspp_gate(x: Tensor, w_feat: Tensor, b_feat: Tensor, w_gate: Tensor, b_gate: Tensor,
                backend: str = "auto") -> Tensor:
    """relu(conv1x1(x; w_feat, b_feat)) * hardsigmoid(conv1x1(mean_hw(x); w_gate, b_gate)).
    x: [N, Cin, H, W], w_feat / w_gate: [Cout, Cin, 1, 1], b_feat / b_gate: [Cout] -> [N, Cout, H, W]."""
    OP_SPECS["lraspp_gate"].check(x, w_feat, b_feat, w_gate, b_gate)
    return _lraspp_gate(x, w_feat, b_feat, w_gate, b_gate, backend)


def upsample_add(x: Tensor, skip: Tensor, backend: str = "auto") -> Tensor:
    """Bilinear (align_corners=False) resize of x [N, C, h, w] to skip's H x W, plus skip [N, C, H, W]."""
    OP_SPECS["upsample_add"].check(x, skip)
    return _upsample_add(x, skip, backend)


def resize_bilinear(x: Tensor, size: tuple[int, int], backend: str = "auto") -> Tensor:
    """Bilinear (align_corners=False) resize of x [N, C, h, w] to size=(H, W)."""
    OP_SPECS["resize_bilinear"].check(x, size)
    return _resize_bilinear(x, int(size[0]), int(size[1]), backend)


__all__ = ["conv1x1_bias_relu", "conv3x3_bias_relu", "lraspp_gate", "resize_bilinear", "upsample_add"]

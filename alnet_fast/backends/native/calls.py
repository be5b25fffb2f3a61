"""CPU kernel calls with their arguments bound (pointers included), for the op-by-op methods of NativeOps and
for NativePlan, which binds them once to its bordered buffers (x_pad, y_pad: see csrc/cpu/cpu_kernels.h).

Activations are NHWC at raw pointers: x [n, h, w, C] (inside a zero border of x_pad pixels when x_pad > 0),
y likewise with y_pad. ``y_ptr=None`` leaves the output to be passed at call time (``call(y=ptr)``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from . import extension
from .packing import NativeWeights

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class KernelCall:
    """One CPU kernel call with every argument bound; ``keep`` holds the tensors the pointers point into
    (packed weights) alive for as long as the call can run."""

    run: Callable[..., None]
    keep: tuple = ()

    def __call__(self, **late_arguments) -> None:
        self.run(**late_arguments)


def _output(y_ptr: int | None) -> dict:
    return {} if y_ptr is None else {"y": y_ptr}


class CpuCalls:
    """Binds the CPU module's kernels to activations and to ``weights``' packs."""

    def __init__(self, weights: NativeWeights):
        self.weights = weights

    def conv(self, x_ptr: int, dtype: torch.dtype, n: int, h: int, w: int, weight: torch.Tensor,
             bias: torch.Tensor, stride: int, relu: bool, y_ptr: int | None, x_pad: int = 0, y_pad: int = 0
             ) -> KernelCall:
        """conv2d (k = weight's size, padding k // 2) + bias (+ ReLU) over x [n, h, w, Cin]."""
        packed, packed_bias = self.weights.conv(weight, bias)
        winograd = self.weights.winograd(weight, bias, stride)
        run = functools.partial(
            extension.cpu_module().conv2d, x=x_ptr, dtype=DTYPE_NAMES[dtype], n=n, h=h, w=w, cin=weight.shape[1],
            weight=packed.data_ptr(), weight_bf16_pairs=packed.dtype == torch.bfloat16, bias=packed_bias.data_ptr(),
            scale=0, cout=weight.shape[0], ksize=weight.shape[-1], stride=stride, relu=relu,
            winograd_weight=winograd.data_ptr() if winograd is not None else 0, x_pad=x_pad, y_pad=y_pad,
            **_output(y_ptr))
        return KernelCall(run, (packed, packed_bias, winograd))

    def lraspp(self, x_ptr: int, dtype: torch.dtype, n: int, h: int, w: int, w_feat: torch.Tensor,
               b_feat: torch.Tensor, w_gate: torch.Tensor, b_gate: torch.Tensor, y_ptr: int | None) -> KernelCall:
        """The Lite R-ASPP gate over x [n, h, w, Cin] (no border)."""
        cout, cin = w_feat.shape[:2]
        packed, packed_bias = self.weights.conv(w_feat, b_feat)
        gate_w, gate_b = self.weights.gate(w_gate, b_gate)
        run = functools.partial(
            extension.cpu_module().lraspp_gate, x=x_ptr, dtype=DTYPE_NAMES[dtype], n=n, h=h, w=w, cin=cin,
            w_feat=packed.data_ptr(), w_feat_bf16_pairs=packed.dtype == torch.bfloat16, b_feat=packed_bias.data_ptr(),
            w_gate=gate_w.data_ptr(), b_gate=gate_b.data_ptr(), cout=cout, **_output(y_ptr))
        return KernelCall(run, (packed, packed_bias, gate_w, gate_b))

    @staticmethod
    def bilinear(x_ptr: int, dtype: torch.dtype, n: int, h: int, w: int, c: int, size: tuple[int, int],
                 skip_ptr: int, y_ptr: int | None, y_pad: int = 0) -> KernelCall:
        """Bilinear resize of x [n, h, w, c] to ``size`` (+ skip at skip_ptr, [n, H, W, c], when not 0)."""
        return KernelCall(functools.partial(
            extension.cpu_module().bilinear, x=x_ptr, dtype=DTYPE_NAMES[dtype], n=n, h=h, w=w, c=c, out_h=size[0],
            out_w=size[1], skip=skip_ptr, y_pad=y_pad, **_output(y_ptr)))

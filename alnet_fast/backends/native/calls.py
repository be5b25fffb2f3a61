"""CPU kernel calls with their arguments bound (pointers included), for the op-by-op methods of NativeOps and
for NativePlan, which binds them once to its bordered buffers (x_pad, y_pad: see csrc/cpu/cpu_kernels.h).

Activations are NHWC at raw pointers: x [n, h, w, C] (inside a zero border of x_pad pixels when x_pad > 0),
y likewise with y_pad. ``y_ptr=None`` leaves the output to be passed at call time (``call(y=ptr)``).
A conv's kernel (Winograd or direct, where both may run) is the process's choice for its shape (choice.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from . import choice, extension
from .choice import ConvKey, DispatchRule, KernelChoice
from .packing import NativeWeights
from .plan import buffer_elements

DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class KernelCall:
    """One CPU kernel call with every argument bound; ``keep`` holds the tensors the pointers point into
    (packed weights) alive for as long as the call can run; ``choice``: a conv's kernel and why (None for
    other ops)."""

    run: Callable[..., None]
    keep: tuple = ()
    choice: KernelChoice | None = None

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
        """conv2d (k = weight's size, padding k // 2) + bias (+ ReLU) over x [n, h, w, Cin], on the kernel
        ``choice.PROCESS_CHOICES`` picks for its shape (timed on first sight, ``time_winograd_and_direct``)."""
        module = extension.cpu_module()
        packed, packed_bias = self.weights.conv(weight, bias)
        winograd = self.weights.winograd(weight, bias, stride)  # None where the rule keeps the conv off Winograd
        cout, cin, k = weight.shape[0], weight.shape[1], weight.shape[-1]
        run = functools.partial(
            module.conv2d, dtype=DTYPE_NAMES[dtype], n=n, h=h, w=w, cin=cin, weight=packed.data_ptr(),
            weight_bf16_pairs=packed.dtype == torch.bfloat16, bias=packed_bias.data_ptr(), scale=0, cout=cout,
            ksize=k, stride=stride, relu=relu)
        runtime = module.build_info()  # the active ISA level, the calling thread's OpenMP threads
        key = ConvKey(runtime["isa_active"], runtime["omp_max_threads"], n, h, w, cin, cout, k, stride,
                      DTYPE_NAMES[dtype])
        rule = DispatchRule(module.conv_kernel(DTYPE_NAMES[dtype]), module.conv_uses_im2col(cin, k),
                            winograd is not None)
        kernel = choice.PROCESS_CHOICES.choose(key, rule, lambda: time_winograd_and_direct(run, key, rule, winograd))
        winograd = winograd if kernel.winograd else None
        run = functools.partial(run, x=x_ptr, winograd_weight=winograd.data_ptr() if winograd is not None else 0,
                                x_pad=x_pad, y_pad=y_pad, **_output(y_ptr))
        return KernelCall(run, (packed, packed_bias, winograd), kernel)

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


def time_winograd_and_direct(conv: Callable[..., None], key: ConvKey, rule: DispatchRule,
                             winograd: torch.Tensor) -> dict[str, float]:
    """Seconds per call of ``conv`` (conv2d with all but x, y, borders and Winograd weights bound) as Winograd and
    as the direct kernel (``choice.time_runs``), on zeroed scratch laid out as a NativePlan binds such a conv:
    x [n, h, w, cin] read in place inside a one-pixel zero border, y [n, h, w, cout] (stride 1) written inside one."""
    x = torch.zeros(buffer_elements((key.n, key.cin, key.h, key.w), 1))
    y = torch.empty(buffer_elements((key.n, key.cout, key.h, key.w), 1))
    bound = functools.partial(conv, x=x.data_ptr(), y=y.data_ptr(), x_pad=1, y_pad=1)
    return choice.time_runs({choice.WINOGRAD_KERNEL: functools.partial(bound, winograd_weight=winograd.data_ptr()),
                             rule.direct_kernel: functools.partial(bound, winograd_weight=0)})

"""Lite R-ASPP gate: y = relu(conv1x1(x; Wf, bf)) * hardsigmoid(conv1x1(mean_hw(x); Wg, bg)).

Three launches: a global-average-pool reduction (``channel_mean_kernel``), the gate mat-vec with
hard-sigmoid (``gate_kernel``, fp32 [N, Cout]), then the 1x1 conv as a GEMM (conv3x3.conv_kernel with one
tap) whose epilogue applies bias, ReLU and the per-(n, c) gate in the same pass.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .conv3x3 import PackedConv, conv_bias_act
from .runtime import on_device


@triton.jit
def channel_mean_kernel(x_ptr, mean_ptr, HW, C, sxn, sxp, sxc,
                        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """mean[n, c] = sum_p x[n, p, c] / HW in fp32. x: [N, HW, C] via strides (NHWC flattened), mean: [N, C]."""
    n = tl.program_id(0)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    x_img = x_ptr + n.to(tl.int64) * sxn
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        mask = (offs_p < HW)[:, None] & c_mask[None, :]
        acc += tl.load(x_img + offs_p[:, None] * sxp + offs_c[None, :] * sxc, mask=mask, other=0.0).to(tl.float32)
    tl.store(mean_ptr + n * C + offs_c, tl.sum(acc, axis=0) / HW, mask=c_mask)


@triton.jit
def gate_kernel(mean_ptr, w_ptr, b_ptr, gate_ptr, Cin, Cout,
                BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr):
    """gate[n, o] = hardsigmoid(sum_i w[o, i] * mean[n, i] + b[o]) = clamp(z / 6 + 1 / 2, 0, 1), fp32.
    mean: [N, Cin] fp32, w: [Cout, Cin], b: [Cout], gate: [N, Cout] fp32."""
    n = tl.program_id(0)
    offs_o = tl.program_id(1) * BLOCK_O + tl.arange(0, BLOCK_O)
    o_mask = offs_o < Cout
    acc = tl.zeros((BLOCK_O, BLOCK_I), dtype=tl.float32)
    for i0 in range(0, Cin, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        i_mask = offs_i < Cin
        m = tl.load(mean_ptr + n * Cin + offs_i, mask=i_mask, other=0.0)
        w = tl.load(w_ptr + offs_o[:, None] * Cin + offs_i[None, :], mask=o_mask[:, None] & i_mask[None, :],
                    other=0.0).to(tl.float32)
        acc += w * m[None, :]
    z = tl.sum(acc, axis=1) + tl.load(b_ptr + offs_o, mask=o_mask, other=0.0).to(tl.float32)
    gate = tl.minimum(tl.maximum(z / 6.0 + 0.5, 0.0), 1.0)
    tl.store(gate_ptr + n * Cout + offs_o, gate, mask=o_mask)


MEAN_BLOCK_P, MEAN_BLOCK_C = 64, 64
GATE_BLOCK_O, GATE_BLOCK_I = 32, 64


def channel_mean(x: torch.Tensor) -> torch.Tensor:
    """x: [N, C, H, W] (any memory format) -> fp32 [N, C], the mean over H and W."""
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    mean = torch.empty((n, c), dtype=torch.float32, device=x.device)
    grid = (n, triton.cdiv(c, MEAN_BLOCK_C))
    channel_mean_kernel[grid](x, mean, h * w, c, x.stride(0), x.stride(3), x.stride(1),
                              BLOCK_P=MEAN_BLOCK_P, BLOCK_C=MEAN_BLOCK_C)
    return mean


def hardsigmoid_gate(mean: torch.Tensor, w_gate: torch.Tensor, b_gate: torch.Tensor) -> torch.Tensor:
    """mean: fp32 [N, Cin], w_gate: [Cout, Cin, 1, 1], b_gate: [Cout] -> fp32 [N, Cout]."""
    n, cin = mean.shape
    cout = w_gate.shape[0]
    w = w_gate.reshape(cout, cin).contiguous()
    gate = torch.empty((n, cout), dtype=torch.float32, device=mean.device)
    grid = (n, triton.cdiv(cout, GATE_BLOCK_O))
    gate_kernel[grid](mean, w, b_gate.contiguous(), gate, cin, cout, BLOCK_O=GATE_BLOCK_O, BLOCK_I=GATE_BLOCK_I)
    return gate


def lraspp_gate(x: torch.Tensor, feat: PackedConv, w_gate: torch.Tensor, b_gate: torch.Tensor,
                input_precision: str = "tf32", autotune: bool = False) -> torch.Tensor:
    """x: [N, Cin, H, W]; feat: the packed 1x1 feature conv; w_gate: [Cout, Cin, 1, 1]; b_gate: [Cout]
    -> [N, Cout, H, W] channels_last in x's dtype. input_precision, autotune: see conv3x3.conv_bias_act."""
    with on_device(x):
        gate = hardsigmoid_gate(channel_mean(x), w_gate, b_gate)
    return conv_bias_act(x, feat, stride=1, relu=True, gate=gate, input_precision=input_precision,
                         autotune=autotune)

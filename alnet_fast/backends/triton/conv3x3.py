"""Implicit-GEMM convolution (3x3, padding 1, stride 1 or 2; 1x1 is the same loop with one tap).

GEMM view: M = N * Ho * Wo output pixels, N = Cout, K = taps * Cin. Activations are NHWC (channels_last):
the A tile of one tap is [BLOCK_M pixels, BLOCK_K channels], contiguous along channels; padding and the
image border are masked loads. Weights are prepacked once to [taps, Cin_pad, Cout] (Cin padded to a
multiple of 16 because tl.dot needs K >= 16; the 3-channel stem becomes 16), so the B tile
[BLOCK_K, BLOCK_N] is contiguous along Cout. The 9 taps are unrolled statically and num_warps is capped
at 4: non-1x1 conv loops at 8 warps have been miscompiled by Triton (pytorch#173068, triton#1254).

Epilogue, in fp32: + bias, optional ReLU, optional per-(n, cout) multiplicative gate (Lite R-ASPP).
Inputs fp32 / fp16 / bf16, accumulation fp32, output in the input's dtype, channels_last.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..spec import conv_out_size
from .runtime import check_input_precision, is_interpreted, lazy_autotuner, on_device

K_ALIGN = 16  # tl.dot needs K >= 16: pad Cin to a multiple of this in the packed weight


@dataclass(frozen=True)
class PackedConv:
    """A conv weight laid out for the kernel. weight: [taps, cin_pad, cout] (zeros in the padding),
    bias: [cout]; ksize 1 or 3; cin: the real input channels."""

    weight: torch.Tensor
    bias: torch.Tensor
    ksize: int
    cin: int

    @property
    def cout(self) -> int:
        return self.weight.shape[2]

    @property
    def cin_pad(self) -> int:
        return self.weight.shape[1]


def pack_conv_weight(weight: torch.Tensor, bias: torch.Tensor) -> PackedConv:
    """weight: [Cout, Cin, k, k] (PyTorch layout, k in {1, 3}), bias: [Cout] -> PackedConv ([k*k, Cin_pad, Cout])."""
    cout, cin, k, _ = weight.shape
    cin_pad = triton.cdiv(cin, K_ALIGN) * K_ALIGN
    taps = weight.detach().permute(2, 3, 1, 0).reshape(k * k, cin, cout)
    packed = torch.zeros(k * k, cin_pad, cout, dtype=weight.dtype, device=weight.device)
    packed[:, :cin] = taps
    return PackedConv(packed, bias.detach().contiguous(), k, cin)


@triton.jit
def conv_kernel(
    x_ptr, w_ptr, b_ptr, gate_ptr, y_ptr,
    N, H, W, Cin, CIN_PAD, Ho, Wo, Cout,
    sxn, sxh, sxw, sxc,
    syn, syh, syw, syc,
    KSIZE: tl.constexpr, STRIDE: tl.constexpr, RELU: tl.constexpr, HAS_GATE: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """y[n, oh, ow, co] = act(sum_{tap, ci} x[n, oh*S + kh - P, ow*S + kw - P, ci] * w[tap, ci, co] + b[co])
    (* gate[n, co]). x: [N, H, W, Cin] via strides, w: [KSIZE*KSIZE, CIN_PAD, Cout], y: [N, Ho, Wo, Cout]."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_mask = offs_m < N * Ho * Wo
    n_mask = offs_n < Cout

    ow = offs_m % Wo
    oh = (offs_m // Wo) % Ho
    img = offs_m // (Wo * Ho)
    x_img = x_ptr + img.to(tl.int64) * sxn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for tap in tl.static_range(KSIZE * KSIZE):
        ih = oh * STRIDE + (tap // KSIZE) - KSIZE // 2
        iw = ow * STRIDE + (tap % KSIZE) - KSIZE // 2
        inside = m_mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        x_row = x_img + ih * sxh + iw * sxw
        for k0 in range(0, CIN_PAD, BLOCK_K):
            ci = k0 + offs_k
            a = tl.load(x_row[:, None] + ci[None, :] * sxc, mask=inside[:, None] & (ci[None, :] < Cin), other=0.0)
            w = tl.load(w_ptr + (tap * CIN_PAD + ci)[:, None] * Cout + offs_n[None, :],
                        mask=(ci[:, None] < CIN_PAD) & n_mask[None, :], other=0.0)
            acc = tl.dot(a, w, acc, input_precision=INPUT_PRECISION)

    acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    mask = m_mask[:, None] & n_mask[None, :]
    if HAS_GATE:
        acc *= tl.load(gate_ptr + img[:, None] * Cout + offs_n[None, :], mask=mask, other=0.0)
    y_row = y_ptr + img.to(tl.int64) * syn + oh * syh + ow * syw
    tl.store(y_row[:, None] + offs_n[None, :] * syc, acc.to(y_ptr.dtype.element_ty), mask=mask)


def interpreter_config(m: int, cout: int, cin_pad: int) -> dict:
    """Tiles for the CPU interpreter: as large as the problem (up to 128 x 128 x 64), since its cost is
    per program and per op, not per element (numpy runs each tile op at once)."""
    return dict(BLOCK_M=min(128, max(16, triton.next_power_of_2(m))),
                BLOCK_N=min(128, max(16, triton.next_power_of_2(cout))),
                BLOCK_K=min(64, triton.next_power_of_2(cin_pad)))


# (BLOCK_M, BLOCK_N, BLOCK_K, num_stages), all at 4 warps (see the module docstring). Eight tiles keep
# first-call tuning short; 16-wide K tiles serve the stem (Cin_pad = 16).
GPU_TILES = ((128, 64, 32, 3), (128, 128, 32, 3), (64, 64, 32, 4), (64, 128, 32, 3),
             (128, 64, 64, 3), (64, 32, 32, 4), (128, 32, 16, 4), (64, 64, 16, 4))


def _gpu_configs() -> list[triton.Config]:
    return [triton.Config(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk), num_warps=4, num_stages=stages)
            for bm, bn, bk, stages in GPU_TILES]


def _prune(configs, named_args, **kwargs):
    """Drop tiles wider than the problem: BLOCK_K beyond Cin_pad, BLOCK_N beyond the next power of 2 of Cout."""
    cin_pad, cout = named_args["CIN_PAD"], named_args["Cout"]
    n_cap = max(32, triton.next_power_of_2(cout))
    kept = [c for c in configs if c.kwargs["BLOCK_K"] <= cin_pad and c.kwargs["BLOCK_N"] <= n_cap]
    return kept or configs[:1]


# Tuned per channel counts and conv kind, not per image size: one tuning serves every input size.
_autotuned_conv = lazy_autotuner(
    conv_kernel, _gpu_configs, key=["Cin", "Cout", "KSIZE", "STRIDE", "HAS_GATE", "INPUT_PRECISION"],
    prune_configs_by={"early_config_prune": _prune})


def conv_bias_act(x: torch.Tensor, packed: PackedConv, stride: int = 1, relu: bool = True,
                  gate: torch.Tensor | None = None, input_precision: str = "ieee") -> torch.Tensor:
    """act(conv(x) + bias) (* gate[:, :, None, None]).

    x: [N, Cin, H, W] (any memory format; NHWC is fastest), gate: fp32 [N, Cout] or None
    -> [N, Cout, ceil(H / stride), ceil(W / stride)] channels_last, x's dtype.
    Arguments are assumed validated (``spec.OP_SPECS``' checks).
    """
    check_input_precision(input_precision)
    x = x.contiguous(memory_format=torch.channels_last)
    n, cin, h, w = x.shape
    ho, wo = conv_out_size(h, stride), conv_out_size(w, stride)
    cout = packed.cout
    y = torch.empty((n, cout, ho, wo), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    weight, bias = packed.weight.to(x.dtype), packed.bias
    args = (x, weight, bias, gate if gate is not None else bias, y,
            n, h, w, cin, packed.cin_pad, ho, wo, cout,
            x.stride(0), x.stride(2), x.stride(3), x.stride(1),
            y.stride(0), y.stride(2), y.stride(3), y.stride(1))
    flags = dict(KSIZE=packed.ksize, STRIDE=stride, RELU=relu, HAS_GATE=gate is not None,
                 INPUT_PRECISION=input_precision)
    m = n * ho * wo

    def grid(meta):
        return triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(cout, meta["BLOCK_N"])

    with on_device(x):
        if is_interpreted(conv_kernel):
            conv_kernel[grid](*args, **flags, **interpreter_config(m, cout, packed.cin_pad))
        else:
            _autotuned_conv(x.device)[grid](*args, **flags)
    return y

"""Implicit-GEMM convolution (3x3, padding 1, stride 1 or 2; 1x1 is the same loop with one tap).

GEMM view: M = N * Ho * Wo output pixels, N = Cout, K = taps * Cin_pad. Activations are NHWC (channels_last):
an A tile is [BLOCK_M pixels, BLOCK_K channels of one tap], contiguous along channels; padding and the
image border are masked loads. Weights are prepacked once to [taps, Cin_pad, Cout] (Cin padded to a
multiple of 16 because tl.dot needs K >= 16; the 3-channel stem becomes 16), i.e. a [K, Cout] matrix whose
B tile [BLOCK_K, BLOCK_N] is contiguous along Cout. The taps x Cin blocks are ONE loop over K (one
software pipeline per tile, not one per tap): BLOCK_K divides Cin_pad (a constexpr), so each K step lies
in one tap and its tap / channel offsets are constant divisions. Tiles: tiles.py (4 warps at most).

Epilogue, in fp32: + bias, optional ReLU, optional per-(n, cout) multiplicative gate (Lite R-ASPP).
Inputs fp32 / fp16 / bf16, accumulation fp32, output in the input's dtype, channels_last.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..spec import conv_out_size
from . import check_input_precision
from .runtime import on_device
from .tiles import LayerKey, Tile, TileCache, block_k_for, candidate_tiles, pinned_tile, tune

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
    N, H, W, Cin, Ho, Wo, Cout,
    sxn, sxh, sxw, sxc,
    syn, syh, syw, syc,
    CIN_PAD: tl.constexpr, KSIZE: tl.constexpr, STRIDE: tl.constexpr, RELU: tl.constexpr,
    HAS_GATE: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """y[n, oh, ow, co] = act(sum_{tap, ci} x[n, oh*S + kh - P, ow*S + kw - P, ci] * w[tap, ci, co] + b[co])
    (* gate[n, co]). x: [N, H, W, Cin] via strides, w: [KSIZE*KSIZE * CIN_PAD, Cout], y: [N, Ho, Wo, Cout].
    BLOCK_K must divide CIN_PAD."""
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
    w_cols = w_ptr + offs_n[None, :]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(0, KSIZE * KSIZE * CIN_PAD, BLOCK_K):  # one pipelined loop over taps x Cin blocks
        tap = kk // CIN_PAD
        ci = kk % CIN_PAD + offs_k
        ih = oh * STRIDE + tap // KSIZE - KSIZE // 2
        iw = ow * STRIDE + tap % KSIZE - KSIZE // 2
        inside = m_mask & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a = tl.load((x_img + ih * sxh + iw * sxw)[:, None] + ci[None, :] * sxc,
                    mask=inside[:, None] & (ci[None, :] < Cin), other=0.0)
        w = tl.load(w_cols + (kk + offs_k)[:, None] * Cout, mask=n_mask[None, :], other=0.0)
        acc = tl.dot(a, w, acc, input_precision=INPUT_PRECISION)

    acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    mask = m_mask[:, None] & n_mask[None, :]
    if HAS_GATE:
        acc *= tl.load(gate_ptr + img[:, None] * Cout + offs_n[None, :], mask=mask, other=0.0)
    y_row = y_ptr + img.to(tl.int64) * syn + oh * syh + ow * syw
    tl.store(y_row[:, None] + offs_n[None, :] * syc, acc.to(y_ptr.dtype.element_ty), mask=mask)


def interpreter_tile(key: LayerKey) -> Tile:
    """Tiles for the CPU interpreter: as large as the problem (up to 128 x 128 x 64), since its cost is
    per program and per op, not per element (numpy runs each tile op at once)."""
    return Tile(min(128, max(16, triton.next_power_of_2(key.m))), min(128, max(16, triton.next_power_of_2(key.cout))),
                block_k_for(key.cin_pad), num_stages=1)


@functools.cache
def _device_tiles(device: torch.device) -> tuple[int, TileCache]:
    """(SM count, on-disk tile cache) of a CUDA device."""
    props = torch.cuda.get_device_properties(device)
    return props.multi_processor_count, TileCache(props.name)


def select_tile(key: LayerKey, device: torch.device, autotune: bool, launch, cache: TileCache | None = None) -> Tile:
    """The tile conv_bias_act launches ``key`` with: pinned (default) or tuned (``launch(tile)`` runs one).

    On CPU (interpreter) the default is ``interpreter_tile``; autotuning there times the GPU candidates
    (sm_count 1), which is how the tuning and its disk cache are tested without a GPU.
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        sm_count, device_cache = _device_tiles(torch.device("cuda", index))
    else:
        sm_count, device_cache = 1, None
    if autotune:
        return tune(key, candidate_tiles(key, sm_count), launch, cache or device_cache, device)
    return pinned_tile(key, sm_count) if device.type == "cuda" else interpreter_tile(key)


def conv_bias_act(x: torch.Tensor, packed: PackedConv, stride: int = 1, relu: bool = True,
                  gate: torch.Tensor | None = None, input_precision: str = "tf32", autotune: bool = False,
                  tile: Tile | None = None, cache: TileCache | None = None) -> torch.Tensor:
    """act(conv(x) + bias) (* gate[:, :, None, None]).

    x: [N, Cin, H, W] (any memory format; NHWC is fastest), gate: fp32 [N, Cout] or None
    -> [N, Cout, ceil(H / stride), ceil(W / stride)] channels_last, x's dtype.
    input_precision: tl.dot's for fp32 x ("tf32" or "ieee"). tile: force one (else ``select_tile``;
    autotune and cache go there). Arguments are assumed validated (``spec.OP_SPECS``' checks).
    """
    check_input_precision(input_precision)
    x = x.contiguous(memory_format=torch.channels_last)
    n, cin, h, w = x.shape
    ho, wo = conv_out_size(h, stride), conv_out_size(w, stride)
    cout = packed.cout
    y = torch.empty((n, cout, ho, wo), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    weight, bias = packed.weight.to(x.dtype), packed.bias
    args = (x, weight, bias, gate if gate is not None else bias, y,
            n, h, w, cin, ho, wo, cout,
            x.stride(0), x.stride(2), x.stride(3), x.stride(1),
            y.stride(0), y.stride(2), y.stride(3), y.stride(1))
    flags = dict(CIN_PAD=packed.cin_pad, KSIZE=packed.ksize, STRIDE=stride, RELU=relu, HAS_GATE=gate is not None,
                 INPUT_PRECISION=input_precision)
    m = n * ho * wo

    def launch(t: Tile) -> None:
        conv_kernel[(triton.cdiv(m, t.block_m), triton.cdiv(cout, t.block_n))](*args, **flags, **t.launch_kwargs())

    with on_device(x):
        if tile is None:
            key = LayerKey(n, h, w, cin, packed.cin_pad, cout, packed.ksize, stride, gate is not None,
                           str(x.dtype).removeprefix("torch."), input_precision)
            tile = select_tile(key, x.device, autotune, launch, cache)
        launch(tile)
    return y

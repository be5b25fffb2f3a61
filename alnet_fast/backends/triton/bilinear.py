"""Bilinear resize (align_corners=False, PyTorch's rule), optionally fused with a residual add.

The decoder's ``upsample_add(x, skip)`` = resize(x, skip's H x W) + skip in one pass, and the final
``resize_bilinear`` of the logits, both on NHWC tiles [BLOCK_P output pixels, BLOCK_C channels].
Source coordinate: src = max((dst + 0.5) * in / out - 0.5, 0), i0 = floor(src), i1 = min(i0 + 1, in - 1).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .runtime import on_device


@triton.jit
def bilinear_kernel(x_ptr, skip_ptr, y_ptr, N, C, H, W, Ho, Wo, scale_h, scale_w,
                    sxn, sxh, sxw, sxc, ssn, ssh, ssw, ssc, syn, syh, syw, syc,
                    HAS_SKIP: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """y[n, oh, ow, c] = bilinear(x[n, :, :, c]) at (oh, ow) (+ skip[n, oh, ow, c]); fp32 arithmetic.
    x: [N, H, W, C], skip and y: [N, Ho, Wo, C], all via strides."""
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = (offs_p < N * Ho * Wo)[:, None] & (offs_c < C)[None, :]
    ow = offs_p % Wo
    oh = (offs_p // Wo) % Ho
    img = (offs_p // (Wo * Ho)).to(tl.int64)

    src_h = tl.maximum((oh.to(tl.float32) + 0.5) * scale_h - 0.5, 0.0)
    src_w = tl.maximum((ow.to(tl.float32) + 0.5) * scale_w - 0.5, 0.0)
    h0 = src_h.to(tl.int32)  # src >= 0, so truncation is floor
    w0 = src_w.to(tl.int32)
    lh = (src_h - h0.to(tl.float32))[:, None]
    lw = (src_w - w0.to(tl.float32))[:, None]
    h1 = tl.minimum(h0 + 1, H - 1)
    w1 = tl.minimum(w0 + 1, W - 1)

    x_img = x_ptr + img * sxn
    c_off = (offs_c * sxc)[None, :]
    v00 = tl.load(x_img[:, None] + (h0 * sxh + w0 * sxw)[:, None] + c_off, mask=mask, other=0.0).to(tl.float32)
    v01 = tl.load(x_img[:, None] + (h0 * sxh + w1 * sxw)[:, None] + c_off, mask=mask, other=0.0).to(tl.float32)
    v10 = tl.load(x_img[:, None] + (h1 * sxh + w0 * sxw)[:, None] + c_off, mask=mask, other=0.0).to(tl.float32)
    v11 = tl.load(x_img[:, None] + (h1 * sxh + w1 * sxw)[:, None] + c_off, mask=mask, other=0.0).to(tl.float32)
    out = (1.0 - lh) * ((1.0 - lw) * v00 + lw * v01) + lh * ((1.0 - lw) * v10 + lw * v11)
    if HAS_SKIP:
        skip_row = skip_ptr + img * ssn + oh * ssh + ow * ssw
        out += tl.load(skip_row[:, None] + (offs_c * ssc)[None, :], mask=mask, other=0.0).to(tl.float32)
    y_row = y_ptr + img * syn + oh * syh + ow * syw
    tl.store(y_row[:, None] + (offs_c * syc)[None, :], out.to(y_ptr.dtype.element_ty), mask=mask)


BLOCK_P, BLOCK_C = 64, 32


def resize_bilinear(x: torch.Tensor, size: tuple[int, int], skip: torch.Tensor | None = None) -> torch.Tensor:
    """x: [N, C, h, w] -> [N, C, H, W] = bilinear resize to size=(H, W) (+ skip [N, C, H, W]),
    channels_last, x's dtype. Any input memory format (strides are passed through)."""
    n, c, h, w = x.shape
    ho, wo = size
    y = torch.empty((n, c, ho, wo), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    s = skip if skip is not None else y
    grid = (triton.cdiv(n * ho * wo, BLOCK_P), triton.cdiv(c, BLOCK_C))
    with on_device(x):
        bilinear_kernel[grid](x, s, y, n, c, h, w, ho, wo, h / ho, w / wo,
                              x.stride(0), x.stride(2), x.stride(3), x.stride(1),
                              s.stride(0), s.stride(2), s.stride(3), s.stride(1),
                              y.stride(0), y.stride(2), y.stride(3), y.stride(1),
                              HAS_SKIP=skip is not None, BLOCK_P=BLOCK_P, BLOCK_C=BLOCK_C)
    return y

"""Argument checks shared by every backend: typed errors raised in Python before any kernel launches."""

from __future__ import annotations

import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _tensor(name: str, t, rank: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {t.dtype}; supported: float32, float16, bfloat16")


def _same_device(**tensors: torch.Tensor) -> None:
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"tensors are on different devices: {devices}")


def _activation(x) -> None:
    _tensor("x", x, 4)
    if min(x.shape) == 0:
        raise ValueError(f"x is empty: shape {tuple(x.shape)}")


def check_conv(x, weight, bias, kernel_size: int, stride: int = 1) -> None:
    """x: [N, Cin, H, W], weight: [Cout, Cin, k, k], bias: [Cout]; stride 1 or 2 (1 for 1x1)."""
    _activation(x)
    _tensor("weight", weight, 4)
    _tensor("bias", bias, 1)
    _same_device(x=x, weight=weight, bias=bias)
    cout, cin, kh, kw = weight.shape
    if (kh, kw) != (kernel_size, kernel_size):
        raise ValueError(f"weight must be {kernel_size}x{kernel_size}, got shape {tuple(weight.shape)}")
    if cin != x.shape[1]:
        raise ValueError(f"weight expects {cin} input channels, x has {x.shape[1]} (x: {tuple(x.shape)})")
    if bias.shape[0] != cout:
        raise ValueError(f"bias has {bias.shape[0]} values, weight has {cout} output channels")
    allowed = (1, 2) if kernel_size == 3 else (1,)
    if stride not in allowed:
        raise ValueError(f"stride must be one of {allowed} for a {kernel_size}x{kernel_size} conv, got {stride}")
    if not (x.dtype == weight.dtype == bias.dtype):
        raise TypeError(f"dtype mismatch: x {x.dtype}, weight {weight.dtype}, bias {bias.dtype}")


def check_lraspp_gate(x, w_feat, b_feat, w_gate, b_gate) -> None:
    """x: [N, Cin, H, W]; w_feat, w_gate: [Cout, Cin, 1, 1]; b_feat, b_gate: [Cout]."""
    check_conv(x, w_feat, b_feat, 1)
    check_conv(x, w_gate, b_gate, 1)
    if w_gate.shape != w_feat.shape:
        raise ValueError(f"w_gate {tuple(w_gate.shape)} and w_feat {tuple(w_feat.shape)} must match")


def check_upsample_add(x, skip) -> None:
    """x: [N, C, h, w], skip: [N, C, H, W]."""
    _activation(x)
    _tensor("skip", skip, 4)
    _same_device(x=x, skip=skip)
    if x.shape[:2] != skip.shape[:2]:
        raise ValueError(f"x {tuple(x.shape)} and skip {tuple(skip.shape)} differ in batch or channels")
    if x.dtype != skip.dtype:
        raise TypeError(f"dtype mismatch: x {x.dtype}, skip {skip.dtype}")


def check_resize(x, size) -> None:
    """x: [N, C, h, w]; size: (H, W) positive ints (symbolic sizes from tracers pass unchecked)."""
    _activation(x)
    if len(size) != 2 or any(isinstance(s, (float, bool)) or (isinstance(s, int) and s < 1) for s in size):
        raise ValueError(f"size must be two positive ints (H, W), got {size!r}")

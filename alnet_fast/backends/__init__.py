"""Backend registry: each backend registers a name, where it runs, and where ``auto`` prefers it.

An explicitly requested backend that cannot run raises ``BackendUnavailable`` with the reason;
``auto`` walks the preference list for the device and reports what it picked and why.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch

from ..errors import BackendUnavailable
from .base import OpTable
from .spec import OP_NAMES


@dataclass(frozen=True)
class BackendSpec:
    """name: what users pass; module/attr: where the OpTable class lives (imported lazily);
    auto_priority: device type -> rank in ``auto`` (lower first; absent = never picked automatically)."""

    name: str
    module: str
    attr: str
    auto_priority: dict


_REGISTRY: dict[str, BackendSpec] = {}


def register_backend(spec: BackendSpec) -> None:
    _REGISTRY[spec.name] = spec


def backend_names() -> list[str]:
    return list(_REGISTRY)


def _instantiate(spec: BackendSpec) -> OpTable:
    try:
        cls = getattr(importlib.import_module(spec.module), spec.attr)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {spec.name!r} cannot be imported: {exc}") from exc
    return cls()


def as_device(device: torch.device | str) -> torch.device:
    """``device`` parsed and checked to exist here; BackendUnavailable saying why not (unknown name, a torch
    build without CUDA, no CUDA device visible, an index past the visible devices)."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise BackendUnavailable(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise BackendUnavailable(f"device {str(device)!r}: this torch build has no CUDA "
                                     f"(torch {torch.__version__}); use --device cpu or a CUDA build of torch")
        count = torch.cuda.device_count()
        if count == 0:
            raise BackendUnavailable(f"device {str(device)!r}: no CUDA device visible (no GPU, no NVIDIA driver, "
                                     "or CUDA_VISIBLE_DEVICES hides them)")
        if device.index is not None and device.index >= count:
            raise BackendUnavailable(f"device {str(device)!r}: only {count} CUDA device(s) visible "
                                     f"(cuda:0..cuda:{count - 1})")
    return device


def get_backend(name: str, device: torch.device | str, dtype: torch.dtype = torch.float32) -> OpTable:
    """The op table called ``name``, checked to run on ``device`` with ``dtype``; raises BackendUnavailable."""
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; known backends: {['auto'] + backend_names()}")
    device = as_device(device)
    ops = _instantiate(_REGISTRY[name])
    reason = ops.unavailable_reason(device, dtype)
    if reason is not None:
        raise BackendUnavailable(reason)
    return ops


def select_backend(name: str, device: torch.device | str, dtype: torch.dtype = torch.float32
                   ) -> tuple[OpTable, str]:
    """(op table, why it was chosen). ``name="auto"`` tries the device's preferred backends in order."""
    device = as_device(device)
    if name != "auto":
        return get_backend(name, device, dtype), f"{name} (requested)"
    ranked = sorted((s for s in _REGISTRY.values() if device.type in s.auto_priority),
                    key=lambda s: s.auto_priority[device.type])
    skipped = []
    for spec in ranked:
        try:
            ops = get_backend(spec.name, device, dtype)
        except BackendUnavailable as exc:
            skipped.append(f"{spec.name}: {exc}")
            continue
        why = f"{spec.name} (auto on {device.type}"
        return ops, why + (f"; skipped {'; '.join(skipped)})" if skipped else ")")
    if not ranked:
        devices = sorted({d for s in _REGISTRY.values() for d in s.auto_priority})
        raise BackendUnavailable(f"no backend runs on {device.type!r} devices; they run on {devices}")
    raise BackendUnavailable(f"no backend can run on {device} with {dtype}: {'; '.join(skipped)}")


register_backend(BackendSpec("torch", "alnet_fast.backends.torch_ops", "TorchOps", {"cpu": 100, "cuda": 100}))
register_backend(BackendSpec("triton", "alnet_fast.backends.triton.ops", "TritonOps", {"cuda": 10}))
register_backend(BackendSpec("native", "alnet_fast.backends.native.ops", "NativeOps", {"cpu": 10, "cuda": 20}))

__all__ = ["OP_NAMES", "OpTable", "BackendSpec", "as_device", "register_backend", "backend_names", "get_backend",
           "select_backend"]

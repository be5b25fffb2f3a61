"""What every kernel module shares: interpreter detection and the launch device context.

Nothing here touches a GPU at import time, so ``import alnet_fast`` works on CPU-only hosts.
"""

from __future__ import annotations

import contextlib

import torch
from triton.runtime.interpreter import InterpretedFunction


def is_interpreted(kernel) -> bool:
    """True when ``kernel`` (a @triton.jit function) was created under TRITON_INTERPRET=1 and runs on CPU."""
    return isinstance(kernel, InterpretedFunction)


def on_device(t: torch.Tensor):
    """Context making t's CUDA device current for a launch (a no-op for CPU tensors under the interpreter)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()

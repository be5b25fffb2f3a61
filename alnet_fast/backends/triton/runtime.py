"""What every kernel module shares: interpreter detection, lazy per-device autotuning, precision flags.

Nothing here touches a GPU at import time: autotuned kernels are built on first use, one per device,
so ``import alnet_fast`` works on CPU-only hosts (``@triton.autotune`` at import once raised
"0 active drivers" there).
"""

from __future__ import annotations

import contextlib
import functools

import torch
import triton
from triton.runtime.interpreter import InterpretedFunction

# tl.dot input precision for fp32 operands: "ieee" is exact fp32; "tf32" trades ~1e-3 relative error
# for tensor-core speed. fp16/bf16 operands ignore it. Module-level default, overridable per call.
INPUT_PRECISIONS = ("ieee", "tf32")


def is_interpreted(kernel) -> bool:
    """True when ``kernel`` (a @triton.jit function) was created under TRITON_INTERPRET=1 and runs on CPU."""
    return isinstance(kernel, InterpretedFunction)


def check_input_precision(input_precision: str) -> str:
    if input_precision not in INPUT_PRECISIONS:
        raise ValueError(f"input_precision must be one of {INPUT_PRECISIONS}, got {input_precision!r}")
    return input_precision


def lazy_autotuner(kernel, configs_fn, key: list[str], prune_configs_by=None):
    """A function device -> autotuned ``kernel``, building one autotuner per device on first call.

    One autotuner per device keeps each device's timing cache separate (an H100 and an A100 in one
    process pick their own configs). configs_fn() -> list[triton.Config] is only called then.
    """

    @functools.cache
    def for_device(device: torch.device):
        return triton.autotune(configs=configs_fn(), key=key, prune_configs_by=prune_configs_by)(kernel)

    return for_device


def on_device(t: torch.Tensor):
    """Context making t's CUDA device current for a launch (a no-op for CPU tensors under the interpreter)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()

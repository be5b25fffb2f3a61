"""CPU threads for inference: PyTorch's intra-op pool and the native kernels' OpenMP teams.

The native extension links the system's OpenMP runtime, not the one bundled with PyTorch, so
``torch.set_num_threads`` alone does not reach it: both are set here.
"""

from __future__ import annotations

import torch

from .backends.native.extension import cpu_module


def set_threads(count: int) -> None:
    """Use ``count`` threads for the torch ops and for native kernels called from this thread.

    OpenMP's thread count is per calling thread: call this from the thread that runs the model.
    """
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"the thread count must be an int, got {type(count).__name__}")
    if count < 1:
        raise ValueError(f"the thread count must be >= 1, got {count}")
    torch.set_num_threads(count)
    module = cpu_module()
    if module is not None:
        module.set_num_threads(count)

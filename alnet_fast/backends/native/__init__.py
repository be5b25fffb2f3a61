"""The native backend: alnet_fast's own C++ (CPU) and CUDA kernels, built from csrc/ by setup.py.

- extension: loads the compiled modules (``alnet_fast._native``, ``alnet_fast._native_cuda``) and reports
  what was built (``build_info``);
- packing: weights laid out for the kernels, cached until stale;
- choice: which kernel each CPU conv runs (Winograd or direct: measured, cached on disk) and why;
- calls: CPU kernel calls bound to pointers and packs;
- cuda_calls: CUDA kernel calls on tensors (their device and current stream);
- plan: NativePlan, a whole CPU forward pass bound once per input shape;
- ops: NativeOps, the op table (registered as backend "native").
"""

from .extension import build_info, cpu_module, cpu_unavailable_reason, cuda_module, cuda_unavailable_reason
from .ops import NativeOps

__all__ = ["NativeOps", "build_info", "cpu_module", "cpu_unavailable_reason", "cuda_module",
           "cuda_unavailable_reason"]

"""CUDA kernel calls (csrc/cuda/) for NativeOps: weights packed for them, the Lite R-ASPP workspace sized by
the module, and every launch on the tensors' own device (made current for the call) and its current stream.

``module`` is ``alnet_fast._native_cuda``, or the host-shim build of the same sources (tests/test_cuda_host.py),
whose kernels run serially on the CPU: given CPU tensors, the calls pass device 0 and the null stream.
Activations are channels_last tensors x [N, C, H, W]; outputs y are written in place.
"""

from __future__ import annotations

from types import ModuleType

import torch

from . import extension
from .calls import DTYPE_NAMES
from .packing import NativeWeights


def launch_target(x: torch.Tensor) -> dict:
    """{"device": x's CUDA ordinal, "stream": its current stream}; device 0 and the null stream on the CPU
    (the host-shim build)."""
    if not x.is_cuda:
        return {"device": 0, "stream": 0}
    return {"device": x.device.index, "stream": torch.cuda.current_stream(x.device).cuda_stream}


class CudaCalls:
    """Runs the CUDA module's kernels on tensors, with ``weights``' packs."""

    def __init__(self, weights: NativeWeights, module: ModuleType | None = None):
        self.weights = weights
        self._module = module

    @property
    def module(self) -> ModuleType:
        return self._module or extension.cuda_module()

    def conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, relu: bool,
             y: torch.Tensor) -> None:
        """y [N, Cout, Ho, Wo] = conv2d(x [N, Cin, H, W], weight [Cout, Cin, k, k], padding k // 2) + bias (+ReLU)."""
        n, cin, h, w = x.shape
        packed, packed_bias = self.weights.cuda_conv(weight, bias)
        self.module.conv2d(x.data_ptr(), DTYPE_NAMES[x.dtype], n, h, w, cin, packed.data_ptr(),
                           packed_bias.data_ptr(), 0, y.data_ptr(), weight.shape[0], weight.shape[-1], stride, relu,
                           **launch_target(x))

    def lraspp(self, x: torch.Tensor, w_feat: torch.Tensor, b_feat: torch.Tensor, w_gate: torch.Tensor,
               b_gate: torch.Tensor, y: torch.Tensor) -> None:
        """y [N, Cout, H, W] = the Lite R-ASPP gate over x [N, Cin, H, W] (1x1 weights [Cout, Cin, 1, 1])."""
        n, cin, h, w = x.shape
        cout = w_feat.shape[0]
        packed, packed_bias = self.weights.cuda_conv(w_feat, b_feat)
        gate_w, gate_b = self.weights.gate(w_gate, b_gate, x.dtype)
        workspace = torch.empty(self.module.lraspp_workspace_floats(n, h, w, cin, cout), dtype=torch.float32,
                                device=x.device)
        self.module.lraspp_gate(x.data_ptr(), DTYPE_NAMES[x.dtype], n, h, w, cin, packed.data_ptr(),
                                packed_bias.data_ptr(), gate_w.data_ptr(), gate_b.data_ptr(), workspace.data_ptr(),
                                y.data_ptr(), cout, **launch_target(x))

    def bilinear(self, x: torch.Tensor, skip: torch.Tensor | None, y: torch.Tensor) -> None:
        """y [N, C, Ho, Wo] = bilinear(x [N, C, H, W], align_corners=False) (+ skip [N, C, Ho, Wo])."""
        n, c, h, w = x.shape
        self.module.bilinear(x.data_ptr(), DTYPE_NAMES[x.dtype], n, h, w, c, *y.shape[2:],
                             skip.data_ptr() if skip is not None else 0, y.data_ptr(), **launch_target(x))

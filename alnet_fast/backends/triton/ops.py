"""TritonOps: every op of the table on the Triton kernels of this package.

On CUDA the kernels are compiled on first use with one pinned tile per layer shape (tiles.py; autotuning
on request, cached on disk); on CPU they run through the Triton interpreter, which must be enabled
(TRITON_INTERPRET=1) before triton is first imported.
bf16 runs on CUDA only: the interpreter silently returns garbage for bf16 tl.dot.

Weights are packed once per (weight, bias) ([taps, Cin_pad, Cout], see conv3x3.py) and cached until stale
(``stamps.PackCache``), so ``prepare(model)`` packs the whole folded model at load time and each forward
reuses the packs; an in-place update or ``p.data = ...`` repacks on next use.
"""

from __future__ import annotations

import torch

from ...graph import conv_weights
from ..base import OpTable
from ..stamps import PackCache
from . import check_input_precision

try:
    from .bilinear import resize_bilinear
    from .conv3x3 import conv_bias_act, conv_kernel, pack_conv_weight
    from .lraspp_gate import lraspp_gate
    from .runtime import is_interpreted
    from .tiles import autotune_requested
except ModuleNotFoundError as exc:  # triton missing: the backend reports it instead of failing to import
    if exc.name != "triton":
        raise
    TRITON_IMPORT_ERROR: ModuleNotFoundError | None = exc
else:
    TRITON_IMPORT_ERROR = None


def triton_unavailable_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the Triton kernels cannot run on ``device`` with ``dtype`` here, or None."""
    if TRITON_IMPORT_ERROR is not None:
        return "triton is not installed (pip install 'alnet_fast[triton]')"
    interpreted = is_interpreted(conv_kernel)
    if device.type == "cpu":
        if not interpreted:
            return "triton on CPU needs TRITON_INTERPRET=1 set before triton is imported"
        if dtype == torch.bfloat16:
            return "triton on CPU (interpreter) does not support bfloat16: its bf16 tl.dot returns wrong results"
    elif device.type == "cuda":
        if interpreted:
            return "triton kernels were loaded with TRITON_INTERPRET=1 (CPU interpreter); unset it to run on CUDA"
        if not torch.cuda.is_available():
            return "triton on CUDA needs a visible CUDA device; none is available"
    return None


class TritonOps(OpTable):
    """input_precision: tl.dot precision for fp32 inputs, "tf32" (default: tensor cores, ~1e-3 relative
    error) or "ieee" (exact fp32, FMA units). autotune: time a few tiles per layer and input size and cache
    the winners on disk (tiles.py); None reads ALNET_TRITON_AUTOTUNE=1 from the environment."""

    name = "triton"
    devices = ("cuda", "cpu")
    dtypes = (torch.float32, torch.float16, torch.bfloat16)

    def __init__(self, input_precision: str = "tf32", autotune: bool | None = None):
        self.input_precision = check_input_precision(input_precision)
        self.autotune = autotune
        self._packs = PackCache()

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype = torch.float32) -> str | None:
        return super().unavailable_reason(device, dtype) or triton_unavailable_reason(device, dtype)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Packs every conv weight of a folded model once and converts it to channels_last."""
        model = model.to(memory_format=torch.channels_last)
        for weight, bias, _ in conv_weights(model):
            self._packed(weight, bias)
        return model

    def _packed(self, weight: torch.Tensor, bias: torch.Tensor):
        return self._packs.get(weight, bias, "triton", lambda: pack_conv_weight(weight, bias))

    def _conv_options(self) -> dict:
        return dict(input_precision=self.input_precision, autotune=autotune_requested(self.autotune))

    def _conv3x3_bias_relu(self, x, weight, bias, stride, relu):
        return conv_bias_act(x, self._packed(weight, bias), stride, relu, **self._conv_options())

    def _conv1x1_bias_relu(self, x, weight, bias, relu):
        return conv_bias_act(x, self._packed(weight, bias), 1, relu, **self._conv_options())

    def _lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        return lraspp_gate(x, self._packed(w_feat, b_feat), w_gate, b_gate, **self._conv_options())

    def _upsample_add(self, x, skip):
        return resize_bilinear(x, tuple(skip.shape[-2:]), skip=skip)

    def _resize_bilinear(self, x, size):
        return resize_bilinear(x, size)

"""The op table: the seam between the folded graph and every backend.

Every backend subclasses ``OpTable`` and implements each op in ``OP_NAMES`` with these signatures
(x in any memory format; weights in PyTorch's conv layout):

- ``conv3x3_bias_relu(x, weight, bias, stride, relu)``: x [N, Cin, H, W], weight [Cout, Cin, 3, 3],
  bias [Cout] -> [N, Cout, ceil(H / stride), ceil(W / stride)]; padding 1.
- ``conv1x1_bias_relu(x, weight, bias, relu)``: weight [Cout, Cin, 1, 1] -> [N, Cout, H, W].
- ``lraspp_gate(x, w_feat, b_feat, w_gate, b_gate)``: relu(conv1x1(x; w_feat, b_feat)) *
  hardsigmoid(conv1x1(mean_hw(x); w_gate, b_gate)) -> [N, Cout, H, W].
- ``upsample_add(x, skip)``: bilinear (align_corners=False) resize of x [N, C, h, w] to skip's
  H x W, plus skip [N, C, H, W] -> [N, C, H, W].
- ``resize_bilinear(x, size)``: bilinear (align_corners=False) resize to size=(H, W).
"""

from __future__ import annotations

import torch

from . import checks

OP_NAMES = ("conv3x3_bias_relu", "conv1x1_bias_relu", "lraspp_gate", "upsample_add", "resize_bilinear")


class OpTable:
    """Base class of every backend. Subclasses set ``name``, ``devices`` and ``dtypes`` and implement the
    underscored ``_<op>`` methods; the public ops validate arguments (typed errors) and dispatch to them."""

    name: str = "abstract"
    devices: tuple[str, ...] = ()
    dtypes: tuple[torch.dtype, ...] = (torch.float32,)

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype = torch.float32) -> str | None:
        """Why this backend cannot run on ``device`` with ``dtype``, or None when it can."""
        if device.type not in self.devices:
            return f"backend {self.name!r} runs on {list(self.devices)}, not on {device.type!r}"
        if dtype not in self.dtypes:
            return f"backend {self.name!r} supports dtypes {[str(d) for d in self.dtypes]}, not {dtype}"
        return None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Called once when a model is bound to this backend (e.g. to prepack weights); returns the model."""
        return model

    def run(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """A folded model's forward pass on x through this table: ``model(x, self)``, op by op. Backends may
        run it as a whole instead (NativeOps on CPU: a NativePlan), with the same result."""
        return model(x, self)

    # Public ops: checked here once, for every backend; backends implement the underscored methods.

    def conv3x3_bias_relu(self, x, weight, bias, stride: int = 1, relu: bool = True):
        checks.check_conv(x, weight, bias, 3, stride)
        return self._conv3x3_bias_relu(x, weight, bias, stride, relu)

    def conv1x1_bias_relu(self, x, weight, bias, relu: bool = True):
        checks.check_conv(x, weight, bias, 1)
        return self._conv1x1_bias_relu(x, weight, bias, relu)

    def lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        checks.check_lraspp_gate(x, w_feat, b_feat, w_gate, b_gate)
        return self._lraspp_gate(x, w_feat, b_feat, w_gate, b_gate)

    def upsample_add(self, x, skip):
        checks.check_upsample_add(x, skip)
        return self._upsample_add(x, skip)

    def resize_bilinear(self, x, size):
        checks.check_resize(x, size)
        return self._resize_bilinear(x, tuple(size))

    def _conv3x3_bias_relu(self, x, weight, bias, stride, relu):
        raise NotImplementedError

    def _conv1x1_bias_relu(self, x, weight, bias, relu):
        raise NotImplementedError

    def _lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        raise NotImplementedError

    def _upsample_add(self, x, skip):
        raise NotImplementedError

    def _resize_bilinear(self, x, size):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

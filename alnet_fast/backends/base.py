"""The op table: the seam between the folded graph and every backend.

Every backend subclasses ``OpTable`` and implements each op in ``OP_NAMES`` (what each computes, its
argument checks and output shape: ``spec.py``), x in any memory format, weights in PyTorch's conv layout.
"""

from __future__ import annotations

import torch

from .spec import OP_SPECS


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
        OP_SPECS["conv3x3_bias_relu"].check(x, weight, bias, stride, relu)
        return self._conv3x3_bias_relu(x, weight, bias, stride, relu)

    def conv1x1_bias_relu(self, x, weight, bias, relu: bool = True):
        OP_SPECS["conv1x1_bias_relu"].check(x, weight, bias, relu)
        return self._conv1x1_bias_relu(x, weight, bias, relu)

    def lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        OP_SPECS["lraspp_gate"].check(x, w_feat, b_feat, w_gate, b_gate)
        return self._lraspp_gate(x, w_feat, b_feat, w_gate, b_gate)

    def upsample_add(self, x, skip):
        OP_SPECS["upsample_add"].check(x, skip)
        return self._upsample_add(x, skip)

    def resize_bilinear(self, x, size):
        OP_SPECS["resize_bilinear"].check(x, size)
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

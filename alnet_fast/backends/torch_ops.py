"""The reference backend: PyTorch ops (channels_last on CPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import OpTable


class TorchOps(OpTable):
    name = "torch"
    devices = ("cpu", "cuda")
    dtypes = (torch.float32, torch.bfloat16, torch.float16)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(memory_format=torch.channels_last)

    def _conv3x3_bias_relu(self, x, weight, bias, stride, relu):
        y = F.conv2d(x, weight, bias, stride=stride, padding=1)
        return torch.relu(y) if relu else y

    def _conv1x1_bias_relu(self, x, weight, bias, relu):
        y = F.conv2d(x, weight, bias)
        return torch.relu(y) if relu else y

    def _lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        gate = F.hardsigmoid(F.conv2d(x.mean(dim=(2, 3), keepdim=True), w_gate, b_gate))
        return torch.relu(F.conv2d(x, w_feat, b_feat)) * gate

    def _upsample_add(self, x, skip):
        return F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip

    def _resize_bilinear(self, x, size):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


TORCH_OPS = TorchOps()

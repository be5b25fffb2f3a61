"""The folded inference graph: AL-Net as a short list of fused ops, run through a backend's op table."""

from __future__ import annotations

import torch
from torch import nn

from .config import ALNetConfig

DECODER_CONVS = ("low", "mid", "high", "context", "fuse", "classifier")


def _frozen(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone(), requires_grad=False)


class FoldedConv(nn.Module):
    """conv(x, weight, bias, stride, padding k // 2), then ReLU if ``relu``. weight: [Cout, Cin, k, k], k in {1, 3}."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride: int = 1, relu: bool = True):
        super().__init__()
        if weight.shape[-1] not in (1, 3) or (weight.shape[-1] == 1 and stride != 1):
            raise ValueError(f"folded convs are 3x3 (stride 1 or 2) or 1x1 (stride 1); got "
                             f"{tuple(weight.shape)} stride {stride}")
        self.weight, self.bias = _frozen(weight), _frozen(bias)
        self.stride, self.relu = stride, relu

    def forward(self, x: torch.Tensor, ops) -> torch.Tensor:
        if self.weight.shape[-1] == 3:
            return ops.conv3x3_bias_relu(x, self.weight, self.bias, self.stride, self.relu)
        return ops.conv1x1_bias_relu(x, self.weight, self.bias, self.relu)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, stride={self.stride}, relu={self.relu}"


class FoldedLiteRASPP(nn.Module):
    """relu(conv1x1(x; w_feat, b_feat)) * hardsigmoid(conv1x1(mean_hw(x); w_gate, b_gate))."""

    def __init__(self, w_feat: torch.Tensor, b_feat: torch.Tensor, w_gate: torch.Tensor, b_gate: torch.Tensor):
        super().__init__()
        self.w_feat, self.b_feat = _frozen(w_feat), _frozen(b_feat)
        self.w_gate, self.b_gate = _frozen(w_gate), _frozen(b_gate)

    def forward(self, x: torch.Tensor, ops) -> torch.Tensor:
        return ops.lraspp_gate(x, self.w_feat, self.b_feat, self.w_gate, self.b_gate)


class FoldedALNet(nn.Module):
    """The reparameterized AL-Net. x: [N, in_channels, H, W] -> logits [N, num_classes, H, W].

    ``forward(x, ops)`` runs every op through ``ops`` (an op table from alnet_fast.backends); without
    one it uses the PyTorch reference ops, which keeps the module traceable by torch.compile and ONNX export.
    """

    def __init__(self, config: ALNetConfig, stages: list[list[FoldedConv]], context: FoldedLiteRASPP,
                 decoder: dict[str, FoldedConv]):
        super().__init__()
        self.config = config
        self.stages = nn.ModuleList(nn.ModuleList(stage) for stage in stages)
        self.context = context
        self.decoder = nn.ModuleDict({name: decoder[name] for name in DECODER_CONVS})

    @classmethod
    def empty(cls, config: ALNetConfig) -> "FoldedALNet":
        """A zero-initialised folded model with the shapes ``config`` implies (to load a state_dict into)."""
        def conv(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True) -> FoldedConv:
            return FoldedConv(torch.zeros(cout, cin, k, k), torch.zeros(cout), stride, relu)

        stages, cin = [], config.in_channels
        for width, depth in zip(config.widths, config.depths):
            stages.append([conv(cin, width, 3, stride=2)] + [conv(width, width, 3) for _ in range(depth - 1)])
            cin = width
        c4, cc, cd = config.widths[4], config.context_channels, config.decoder_channels
        context = FoldedLiteRASPP(torch.zeros(cc, c4, 1, 1), torch.zeros(cc), torch.zeros(cc, c4, 1, 1),
                                  torch.zeros(cc))
        decoder = {"low": conv(config.widths[1], cd, 3), "mid": conv(config.widths[2], cd, 3),
                   "high": conv(config.widths[3], cd, 1), "context": conv(cc, cd, 1), "fuse": conv(cd, cd, 3),
                   "classifier": conv(cd, config.num_classes, 1, relu=False)}
        return cls(config, stages, context, decoder)

    def forward(self, x: torch.Tensor, ops=None) -> torch.Tensor:
        if ops is None:
            from .backends.torch_ops import TORCH_OPS as ops
        features = []
        h = x
        for stage in self.stages:
            for conv in stage:
                h = conv(h, ops)
            features.append(h)
        _, f1, f2, f3, f4 = features
        d = self.decoder
        y = d["context"](self.context(f4, ops), ops)
        y = ops.upsample_add(y, d["high"](f3, ops))
        y = ops.upsample_add(y, d["mid"](f2, ops))
        y = ops.upsample_add(y, d["low"](f1, ops))
        logits = d["classifier"](d["fuse"](y, ops), ops)
        return ops.resize_bilinear(logits, (x.shape[-2], x.shape[-1]))


def conv_weights(model: nn.Module):
    """Every (weight, bias, stride) a folded graph convolves with: each FoldedConv's, and the Lite R-ASPP
    feature conv's (stride 1; its gate is a mat-vec). What backends prepack at load time."""
    for module in model.modules():
        if isinstance(module, FoldedConv):
            yield module.weight, module.bias, module.stride
        elif isinstance(module, FoldedLiteRASPP):
            yield module.w_feat, module.b_feat, 1


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

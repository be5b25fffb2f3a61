"""Structural reparameterization: fold every BN and every multi-branch block into single convs.

Pure functions on tensors. All folding runs in float64 from the BNs' running statistics, each BN
with its own eps; results are cast to the requested dtype at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .graph import FoldedALNet, FoldedConv, FoldedLiteRASPP
from .model import ALNet, ConvBN, LiteRASPP, RepVGGBlock

Folded = tuple[torch.Tensor, torch.Tensor]


def bn_scale_shift(bn: nn.BatchNorm2d) -> Folded:
    """BN(x) == scale[c] * x + shift[c] in eval mode; float64. -> ([C], [C])."""
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def fold_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> Folded:
    """conv(x, weight) then BN -> conv(x, w) + b. weight: [Cout, Cin, k, k] -> (w [Cout, Cin, k, k], b [Cout])."""
    scale, shift = bn_scale_shift(bn)
    return weight.double() * scale[:, None, None, None], shift


def identity_kernel(channels: int, device: torch.device) -> torch.Tensor:
    """The 3x3 kernel of the identity map. -> [channels, channels, 3, 3], float64."""
    kernel = torch.zeros(channels, channels, 3, 3, dtype=torch.float64, device=device)
    kernel[torch.arange(channels), torch.arange(channels), 1, 1] = 1.0
    return kernel


def fold_repvgg_block(block: RepVGGBlock) -> Folded:
    """k = k3 + pad(k1, 1) + k_id (identity only when Cin == Cout and stride 1). -> ([Cout, Cin, 3, 3], [Cout])."""
    w3, b3 = fold_conv_bn(block.conv3x3.conv.weight, block.conv3x3.bn)
    w1, b1 = fold_conv_bn(block.conv1x1.conv.weight, block.conv1x1.bn)
    weight, bias = w3 + F.pad(w1, (1, 1, 1, 1)), b3 + b1
    if block.identity is not None:
        wi, bi = fold_conv_bn(identity_kernel(block.in_channels, w3.device), block.identity)
        weight, bias = weight + wi, bias + bi
    return weight, bias


def fold_conv_bn_module(module: ConvBN) -> Folded:
    return fold_conv_bn(module.conv.weight, module.bn)


def reparameterize(model: ALNet, dtype: torch.dtype = torch.float32) -> FoldedALNet:
    """The folded inference model of an eval-mode ALNet: same input, same logits, single-branch convs.

    The input model is never modified. A model in training mode is refused: its outputs use batch
    statistics, which no folded model can reproduce.
    """
    if not isinstance(model, ALNet):
        raise TypeError(f"reparameterize expects an alnet_fast.ALNet, got {type(model).__name__}")
    if model.training:
        raise ValueError("model is in training mode; call model.eval() before folding "
                         "(folding uses BN running statistics, training-mode outputs use batch statistics)")
    with torch.no_grad():
        def conv(folded: Folded, stride: int = 1, relu: bool = True) -> FoldedConv:
            weight, bias = folded
            return FoldedConv(weight.to(dtype), bias.to(dtype), stride=stride, relu=relu)

        stages = [[conv(fold_repvgg_block(block), block.stride) for block in stage]
                  for stage in model.encoder.stages]
        context: LiteRASPP = model.context
        wf, bf = fold_conv_bn_module(context.feature)
        gate = context.gate
        folded_context = FoldedLiteRASPP(wf.to(dtype), bf.to(dtype), gate.weight.to(dtype),
                                         gate.bias.to(dtype))
        d = model.decoder
        decoder = {name: conv(fold_conv_bn_module(getattr(d, name)))
                   for name in ("low", "mid", "high", "context", "fuse")}
        decoder["classifier"] = conv((d.classifier.weight.double(), d.classifier.bias.double()), relu=False)
        return FoldedALNet(model.config, stages, folded_context, decoder)

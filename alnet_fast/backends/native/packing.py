"""Weights laid out for the native kernels, packed once per (weight, bias) and repacked only when stale.

CPU: [Cout/16][k][k][Cin][16] fp32, or for bf16 [Cout/16][k][k][Cp/2][16][2] pairs (Cp = Cin rounded up to 2
for vdpbf16ps, to 32 for AMX tiles). Convs with few input channels (the stem; ``conv_uses_im2col``) run as a
1x1 conv over their k x k patches, whose pairs are packed from the weight reordered to [Cout, k k Cin, 1, 1]
(``as_patch_conv``). fp32 3x3 stride-1 convs the CPU module runs as Winograd F(2x2, 3x3)
(``conv_uses_winograd``) also get their transformed weights G g G^T as [16][Cout/16][Cin][16].
CUDA: [k][k][Cin][Cout] (coalesced over Cout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stamps import PackCache
from . import extension


def pack_cpu_conv(weight: torch.Tensor, bias: torch.Tensor, bf16_pairs: bool, cin_multiple: int = 2
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [Cout, Cin, k, k], bias [Cout] -> (packed weight, bias [Cout rounded up to 16] fp32).

    Packed: [Cout/16, k, k, Cin, 16] fp32, or [Cout/16, k, k, Cp/2, 16, 2] bf16 with Cp = Cin rounded up
    to ``cin_multiple`` (2 for vdpbf16ps, 32 for AMX tiles)."""
    cout, cin, k, _ = weight.shape
    blocks = -(-cout // 16)
    w = F.pad(weight.detach(), (0, 0, 0, 0, 0, 0, 0, blocks * 16 - cout))
    b = F.pad(bias.detach().float(), (0, blocks * 16 - cout)).contiguous()
    if not bf16_pairs:
        return w.float().reshape(blocks, 16, cin, k, k).permute(0, 3, 4, 2, 1).contiguous(), b
    cin_padded = -(-cin // cin_multiple) * cin_multiple
    w = F.pad(w, (0, 0, 0, 0, 0, cin_padded - cin)).to(torch.bfloat16)
    return w.reshape(blocks, 16, cin_padded // 2, 2, k, k).permute(0, 4, 5, 2, 1, 3).contiguous(), b


def as_patch_conv(weight: torch.Tensor) -> torch.Tensor:
    """weight [Cout, Cin, k, k] -> [Cout, k * k * Cin, 1, 1] ordered (ky, kx, c): the 1x1 conv over im2col patches."""
    cout, cin, k, _ = weight.shape
    return weight.detach().permute(0, 2, 3, 1).reshape(cout, k * k * cin, 1, 1)


# G of Winograd F(2x2, 3x3): U = G g G^T turns a 3x3 kernel g into the 4x4 one multiplied elementwise with
# the transformed 4x4 input tiles (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks").
_WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def pack_cpu_winograd(weight: torch.Tensor) -> torch.Tensor:
    """weight [Cout, Cin, 3, 3] (Cout a multiple of 16) -> U = G g G^T as [16, Cout/16, Cin, 16] fp32,
    the 4x4 position e = 4 i + j outermost. Transformed in float64, then rounded once to fp32."""
    cout, cin = weight.shape[:2]
    g = torch.tensor(_WINOGRAD_G, dtype=torch.float64)
    u = g @ weight.detach().double() @ g.T  # [Cout, Cin, 4, 4]
    return u.float().reshape(cout // 16, 16, cin, 16).permute(3, 0, 2, 1).contiguous()


def pack_cuda_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [Cout, Cin, k, k] -> [k, k, Cin, Cout] (coalesced over Cout), bias contiguous."""
    return weight.detach().permute(2, 3, 1, 0).contiguous(), bias.detach().contiguous()


def pack_gate(w_gate: torch.Tensor, b_gate: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The Lite R-ASPP gate's 1x1 conv as a mat-vec: w_gate [Cout, Cin, 1, 1] -> [Cout, Cin], both in ``dtype``."""
    return (w_gate.detach().reshape(w_gate.shape[0], w_gate.shape[1]).to(dtype).contiguous(),
            b_gate.detach().to(dtype).contiguous())


class NativeWeights:
    """Every packed weight the native kernels read, cached (``stamps.PackCache``) per layout."""

    def __init__(self):
        self._packs = PackCache()

    def conv(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(packed weight, packed bias) in the layout the active kernel for weight's device and dtype reads."""
        if weight.device.type == "cuda":
            return self.cuda_conv(weight, bias)
        module = extension.cpu_module()
        if weight.dtype == torch.bfloat16 and module.uses_bf16_dot():
            multiple = module.bf16_channel_multiple()
            if module.conv_uses_im2col(weight.shape[1], weight.shape[-1]):  # a 1x1 conv over (ky, kx, c) patches
                return self._packs.get(weight, bias, f"cpu-bf16-pairs-{multiple}-im2col",
                                       lambda: pack_cpu_conv(as_patch_conv(weight), bias, True, multiple))
            return self._packs.get(weight, bias, f"cpu-bf16-pairs-{multiple}",
                                   lambda: pack_cpu_conv(weight, bias, True, multiple))
        return self._packs.get(weight, bias, "cpu-fp32", lambda: pack_cpu_conv(weight, bias, False))

    def cuda_conv(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The CUDA kernels' layout, on weight's device (the CPU for their host-shim build)."""
        return self._packs.get(weight, bias, "cuda", lambda: pack_cuda_conv(weight, bias))

    def winograd(self, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor | None:
        """The Winograd weights if the CPU module runs this fp32 conv as Winograd, else None."""
        cout, cin, k = weight.shape[0], weight.shape[1], weight.shape[-1]
        if weight.dtype != torch.float32 or not extension.cpu_module().conv_uses_winograd(cin, cout, k, stride):
            return None
        return self._packs.get(weight, bias, "cpu-fp32-winograd", lambda: pack_cpu_winograd(weight))

    def gate(self, w_gate: torch.Tensor, b_gate: torch.Tensor, dtype: torch.dtype = torch.float32
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The gate mat-vec's weights in ``dtype``: fp32 for the CPU kernels, the activations' for the CUDA ones."""
        return self._packs.get(w_gate, b_gate, f"gate-{dtype}", lambda: pack_gate(w_gate, b_gate, dtype))

"""Per-kernel benchmarks: each native CPU op against the PyTorch op it replaces (channels_last
F.conv2d + ReLU, F.interpolate + add, ...), on AL-Net's own layer shapes for a 512x512 input, batch 1.

    pytest bench/test_native_kernels.py --benchmark-only --benchmark-group-by=group

Each pair shares a benchmark group named after the layer; every native result is first checked against
torch's (fp32: max|diff| <= 1e-5 * max|ref|; bf16: <= 2^-7 * max|ref|, as torch rounds to bf16 after
every op and the native kernels once).
"""

from __future__ import annotations

import pytest
import torch

from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps
from alnet_fast.backends.torch_ops import TorchOps

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")

# (name, op, Cin, Cout, H, W, stride): the distinct op shapes of the default AL-Net at 512x512.
LAYERS = [
    ("stem 3->32 s2 @512", "conv3x3_bias_relu", 3, 32, 512, 512, 2),
    ("stage1 32->32 s2 @256", "conv3x3_bias_relu", 32, 32, 256, 256, 2),
    ("stage1 32->32 @128", "conv3x3_bias_relu", 32, 32, 128, 128, 1),
    ("stage2 32->64 s2 @128", "conv3x3_bias_relu", 32, 64, 128, 128, 2),
    ("stage2 64->64 @64", "conv3x3_bias_relu", 64, 64, 64, 64, 1),
    ("stage3 64->128 s2 @64", "conv3x3_bias_relu", 64, 128, 64, 64, 2),
    ("stage3 128->128 @32 (x13)", "conv3x3_bias_relu", 128, 128, 32, 32, 1),
    ("stage4 128->640 s2 @32", "conv3x3_bias_relu", 128, 640, 32, 32, 2),
    ("decoder mid 64->128 @64", "conv3x3_bias_relu", 64, 128, 64, 64, 1),
    ("decoder low 32->128 @128", "conv3x3_bias_relu", 32, 128, 128, 128, 1),
    ("decoder fuse 128->128 @128", "conv3x3_bias_relu", 128, 128, 128, 128, 1),
    ("decoder high 1x1 128->128 @32", "conv1x1_bias_relu", 128, 128, 32, 32, 1),
    ("classifier 1x1 128->1 @128", "conv1x1_bias_relu", 128, 1, 128, 128, 1),
    ("lraspp gate 640->128 @16", "lraspp_gate", 640, 128, 16, 16, 1),
    ("upsample_add 128 @16->32", "upsample_add", 128, 128, 16, 16, 1),
    ("upsample_add 128 @64->128", "upsample_add", 128, 128, 64, 64, 1),
    ("resize 1 @128->512", "resize_bilinear", 1, 1, 128, 128, 1),
]

IMPLS = {"native": NativeOps, "torch": TorchOps}


def make_args(op: str, cin: int, cout: int, h: int, w: int, stride: int, dtype: torch.dtype) -> tuple:
    g = torch.Generator().manual_seed(0)

    def t(*shape, scale=1.0, channels_last=False):
        out = (torch.randn(*shape, generator=g) * scale).to(dtype)
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

    x = t(1, cin, h, w, channels_last=True)
    if op == "conv3x3_bias_relu":
        return x, t(cout, cin, 3, 3, scale=(9 * cin) ** -0.5, channels_last=True), t(cout), stride, True
    if op == "conv1x1_bias_relu":
        return x, t(cout, cin, 1, 1, scale=cin**-0.5, channels_last=True), t(cout), cout > 1
    if op == "lraspp_gate":
        return x, t(cout, cin, 1, 1, scale=cin**-0.5), t(cout), t(cout, cin, 1, 1, scale=cin**-0.5), t(cout)
    if op == "upsample_add":
        return x, t(1, cin, 2 * h, 2 * w, channels_last=True)
    return x, (4 * h, 4 * w)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("layer", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_kernel(benchmark, layer, impl, dtype):
    name, op, *shape = layer
    args = make_args(op, *shape, dtype)
    ops = IMPLS[impl]()
    ops.prepare(torch.nn.Module())
    fn = getattr(ops, op)
    with torch.inference_mode():
        out = fn(*args)
        ref = getattr(TorchOps(), op)(*args).float()
        tol = 1e-5 if dtype == torch.float32 else 2.0**-7
        assert (out.float() - ref).abs().max().item() <= tol * ref.abs().max().item() + 1e-6
        benchmark.group = f"{name} {str(dtype)[6:]}"
        benchmark.extra_info.update(entry=impl, precision="bf16" if dtype == torch.bfloat16 else "fp32")
        benchmark.pedantic(fn, args=args, rounds=20, warmup_rounds=2, iterations=1)

"""GPU tier: the native CUDA kernels vs torch on the same device (skips without CUDA, with the reason).

The same kernel sources run on the CPU in tests/test_cuda_host.py (built with g++ through the host shim), and
the same checks through the native CPU kernels (tests/test_native_ops.py, tests/test_native_model.py); these
exercise the nvcc build of csrc/cuda/ wherever a GPU is visible.

Tolerances: fp32 kernels accumulate in fp32 exactly like the CPU ones (max|diff| <= 1e-5 * max|ref|
against a float64 reference; torch's TF32 is not involved since the reference is float64). fp16 / bf16:
fp32 accumulation then one rounding of the output (half an ulp: 2^-11 resp. 2^-9 relative), bound
2^-8 |ref| + 1e-3 * max|ref| for both.
"""

import pytest
import torch
import torch.nn.functional as F

from conftest import requires_cuda

from alnet_fast import reparameterize
from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps
from alnet_fast.testing import random_alnet

pytestmark = [requires_cuda, pytest.mark.gpu,
              pytest.mark.skipif(native.cuda_unavailable_reason() is not None,
                                 reason=f"native CUDA kernels unavailable: {native.cuda_unavailable_reason()}")]

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> bool:
    err = (out.double() - ref).abs()
    if dtype == torch.float32:
        return err.max().item() <= 1e-5 * ref.abs().max().item()
    return bool((err <= 2.0**-8 * ref.abs() + 1e-3 * ref.abs().max()).all())


def rand(*shape, dtype, scale=1.0):
    return (torch.randn(*shape, device="cuda") * scale).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [(1, 3, 32, 17, 13, 2, True), (2, 32, 20, 9, 11, 1, False),
                                  (1, 128, 128, 16, 16, 1, True)], ids=str)
def test_cuda_conv3x3(dtype, case):
    n, cin, cout, h, w, stride, relu = case
    x, b = rand(n, cin, h, w, dtype=dtype), rand(cout, dtype=dtype)
    wt = rand(cout, cin, 3, 3, dtype=dtype, scale=(9 * cin) ** -0.5)
    out = NativeOps().conv3x3_bias_relu(x, wt, b, stride, relu)
    ref = F.conv2d(x.double(), wt.double(), b.double(), stride=stride, padding=1)
    assert out.is_cuda and out.dtype == dtype
    assert close(out, torch.relu(ref) if relu else ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [(5, 7), (33, 40)], ids=str)  # below / above the 256 ranges of the channel mean
def test_cuda_gate_upsample_resize(dtype, size):
    ops = NativeOps()
    x = rand(2, 80, *size, dtype=dtype)
    wf, bf, wg, bg = (rand(40, 80, 1, 1, dtype=dtype, scale=1 / 9), rand(40, dtype=dtype),
                      rand(40, 80, 1, 1, dtype=dtype, scale=1 / 3), rand(40, dtype=dtype, scale=3))
    xd = x.double()
    gate = F.hardsigmoid(F.conv2d(xd.mean((2, 3), keepdim=True), wg.double(), bg.double()))
    assert close(ops.lraspp_gate(x, wf, bf, wg, bg), torch.relu(F.conv2d(xd, wf.double(), bf.double())) * gate, dtype)
    out_size = (2 * size[0] + 1, 2 * size[1] - 1)
    skip = rand(2, 80, *out_size, dtype=dtype)
    up = F.interpolate(xd, size=out_size, mode="bilinear", align_corners=False)
    assert close(ops.upsample_add(x, skip), up + skip.double(), dtype)
    assert close(ops.resize_bilinear(x, out_size), up, dtype)


def test_cuda_runs_on_the_current_stream():
    ops = NativeOps()
    f32 = torch.float32
    x, wt, b = rand(1, 16, 64, 64, dtype=f32), rand(16, 16, 3, 3, dtype=f32), rand(16, dtype=f32)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())  # x, wt, b are written on the default stream
    with torch.cuda.stream(stream):
        out = ops.conv3x3_bias_relu(x, wt, b)
    torch.cuda.current_stream().wait_stream(stream)
    assert close(out, torch.relu(F.conv2d(x.double(), wt.double(), b.double(), padding=1)), torch.float32)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_cuda_launches_on_the_tensors_device_and_keeps_the_current_one():
    ops = NativeOps()
    f32 = torch.float32
    x, wt, b = rand(1, 16, 24, 20, dtype=f32), rand(16, 16, 3, 3, dtype=f32), rand(16, dtype=f32)
    x1, wt1, b1 = x.to("cuda:1"), wt.to("cuda:1"), b.to("cuda:1")
    torch.cuda.set_device(0)
    out = ops.conv3x3_bias_relu(x1, wt1, b1)
    assert torch.cuda.current_device() == 0 and out.device == x1.device
    assert close(out.cpu(), torch.relu(F.conv2d(x.double(), wt.double(), b.double(), padding=1)).cpu(), f32)
    up = ops.upsample_add(out[..., :12, :10], out)
    assert torch.equal(up.cpu(), ops.upsample_add(out[..., :12, :10].cuda(0), out.cuda(0)).cpu())


def test_cuda_whole_model_matches_multibranch():
    model = random_alnet(seed=5)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        out = reparameterize(model).cuda()(x.cuda(), NativeOps()).cpu()
    assert (out - ref).abs().max().item() <= 1e-5 * ref.abs().max().item() + 1e-6

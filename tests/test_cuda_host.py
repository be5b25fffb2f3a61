"""CPU tier of the native CUDA kernels: csrc/cuda/kernels.cu and its binding csrc/cuda/module.cpp compiled for
the host with a C++ compiler through csrc/cuda/host_shim.h (blocks and threads run serially), called through
the same CudaCalls as the GPU path, and checked against float64 references like every other op. The GPU tier
(tests/test_gpu_native.py) runs the nvcc build of the same source wherever a GPU is visible.

The module is built with ALNET_CUDA_MAX_BLOCKS=3, so that every op larger than 3 x 256 outputs also runs the
grid-stride loops' later iterations. Outputs are views into guarded buffers: a write outside the output fails.

Tolerances (inputs are rounded to the dtype first and the reference takes those rounded values, so what is
left is the kernels' own arithmetic): fp32 accumulation over at most 9 * 48 terms, max|diff| <= 1e-5 *
max|ref| (as in the GPU tier); fp16 / bf16 add one rounding of the output, half an ulp, i.e. u |ref| with
the unit roundoff u = 2^-11 (fp16) or 2^-8 (bf16): |diff| <= u |ref| + 1e-5 max|ref| elementwise.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from alnet_fast.backends.native.cuda_calls import CudaCalls
from alnet_fast.backends.native.packing import NativeWeights

CSRC = Path(__file__).resolve().parents[1] / "csrc"
CXX = shutil.which("g++") or shutil.which("c++")
pybind11 = pytest.importorskip("pybind11", reason="the host build of the CUDA kernels needs pybind11's headers")
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++ or c++) to build the host shim tier")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
UNIT_ROUNDOFF = {torch.float32: 0.0, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
GUARD = 64  # sentinel elements on each side of every output


def build_host_module(out_dir: Path) -> ModuleType:
    """Compiles the CUDA sources with the host shim into out_dir/_native_cuda*.so and imports it."""
    output = out_dir / f"_native_cuda{sysconfig.get_config_var('EXT_SUFFIX')}"
    command = [CXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror",
               "-DALNET_CUDA_HOST_SHIM", "-DALNET_CUDA_MAX_BLOCKS=3", f"-I{CSRC}",
               f"-I{sysconfig.get_paths()['include']}", f"-I{pybind11.get_include()}",
               "-x", "c++", str(CSRC / "cuda" / "kernels.cu"), "-x", "none", str(CSRC / "cuda" / "module.cpp"),
               "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"host build of csrc/cuda failed:\n{result.stderr[-4000:]}"
    spec = importlib.util.spec_from_file_location("_native_cuda", output)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> ModuleType:
    return build_host_module(tmp_path_factory.mktemp("cuda_host"))


@pytest.fixture
def calls(host) -> CudaCalls:
    return CudaCalls(NativeWeights(), module=host)


def rand(*shape, dtype, scale=1.0) -> torch.Tensor:
    return (torch.randn(*shape, dtype=torch.float64) * scale).to(dtype)


class Guarded:
    """A channels_last output [n, c, h, w] inside a buffer whose GUARD elements on each side hold a sentinel."""

    def __init__(self, shape: tuple[int, int, int, int], dtype: torch.dtype):
        n, c, h, w = shape
        self.buffer = torch.full((2 * GUARD + n * h * w * c,), -12345.0, dtype=dtype)
        self.y = self.buffer[GUARD:-GUARD].view(n, h, w, c).permute(0, 3, 1, 2)

    def result(self) -> torch.Tensor:
        guards = torch.cat([self.buffer[:GUARD], self.buffer[-GUARD:]])
        assert (guards == -12345.0).all(), "a kernel wrote outside its output"
        return self.y


def assert_close(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    assert out.dtype == dtype and out.shape == ref.shape
    err = (out.double() - ref).abs()
    bound = UNIT_ROUNDOFF[dtype] * ref.abs() + 1e-5 * ref.abs().max()
    assert bool((err <= bound).all()), f"max|diff| {err.max().item():.3g}, worst excess {(err - bound).max().item():.3g}"


# (n, cin, cout, h, w, k, stride, relu): odd sizes, channel counts off any tile, batch > 1, 1x1 and 3x3,
# stride 1 and 2, outputs below and above one grid pass (3 blocks x 256 threads).
CONV_CASES = [(2, 3, 24, 7, 9, 3, 2, True), (3, 5, 7, 6, 5, 3, 1, False), (1, 19, 33, 5, 11, 3, 2, False),
              (2, 48, 6, 3, 3, 3, 1, True), (2, 16, 10, 4, 7, 1, 1, True), (1, 9, 5, 13, 3, 1, 1, False)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv(calls, dtype, case):
    n, cin, cout, h, w, k, stride, relu = case
    x = rand(n, cin, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)
    weight, bias = rand(cout, cin, k, k, dtype=dtype, scale=(k * k * cin) ** -0.5), rand(cout, dtype=dtype)
    out = Guarded((n, cout, (h - 1) // stride + 1, (w - 1) // stride + 1), dtype)
    calls.conv(x, weight, bias, stride, relu, out.y)
    ref = F.conv2d(x.double(), weight.double(), bias.double(), stride=stride, padding=k // 2)
    assert_close(out.result(), torch.relu(ref) if relu else ref, dtype)


# (n, cin, cout, h, w): h * w below, at and above the 256 pixel ranges the channel mean is split into.
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", [(2, 48, 40, 4, 6), (3, 8, 12, 9, 11), (1, 5, 3, 1, 1), (2, 7, 9, 16, 16),
                                  (1, 6, 5, 17, 19)], ids=str)
def test_lraspp_gate(calls, dtype, case):
    n, cin, cout, h, w = case
    x = rand(n, cin, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w_feat, b_feat = rand(cout, cin, 1, 1, dtype=dtype, scale=cin**-0.5), rand(cout, dtype=dtype)
    w_gate, b_gate = rand(cout, cin, 1, 1, dtype=dtype, scale=3 * cin**-0.5), rand(cout, dtype=dtype, scale=3)
    out = Guarded((n, cout, h, w), dtype)
    calls.lraspp(x, w_feat, b_feat, w_gate, b_gate, out.y)
    xd = x.double()
    gate = F.hardsigmoid(F.conv2d(xd.mean((2, 3), keepdim=True), w_gate.double(), b_gate.double()))
    assert_close(out.result(), torch.relu(F.conv2d(xd, w_feat.double(), b_feat.double())) * gate, dtype)


# (n, c, h, w, out_h, out_w, skip): upsampling by 2 and by odd ratios, downsampling, with and without skip.
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", [(2, 5, 3, 4, 7, 9, True), (1, 3, 4, 5, 13, 17, False), (2, 24, 4, 5, 8, 10, True),
                                  (1, 4, 9, 8, 4, 3, False), (3, 2, 1, 1, 3, 2, True)], ids=str)
def test_bilinear(calls, dtype, case):
    n, c, h, w, out_h, out_w, with_skip = case
    x = rand(n, c, h, w, dtype=dtype).contiguous(memory_format=torch.channels_last)
    skip = rand(n, c, out_h, out_w, dtype=dtype).contiguous(memory_format=torch.channels_last) if with_skip else None
    out = Guarded((n, c, out_h, out_w), dtype)
    calls.bilinear(x, skip, out.y)
    ref = F.interpolate(x.double(), size=(out_h, out_w), mode="bilinear", align_corners=False)
    assert_close(out.result(), ref + skip.double() if with_skip else ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_conversions_round_like_torch(calls, dtype):
    """Every finite 16-bit value times 1 + 2^-7 (exact in both dtypes, the product exact in fp32 but not in
    the dtype) through a 1x1 conv: the shim's fp32 -> fp16 / bf16 rounding (to nearest, ties to even,
    subnormals, overflow to inf) gives torch's values."""
    values = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    values = values[torch.isfinite(values)]
    weight, bias = torch.full((1, 1, 1, 1), 1 + 2.0**-7, dtype=dtype), torch.zeros(1, dtype=dtype)
    out = Guarded((1, 1, 1, values.numel()), dtype)
    calls.conv(values.reshape(1, 1, 1, -1), weight, bias, 1, False, out.y)
    expected = (values.float() * (1 + 2.0**-7)).to(dtype)  # the same fp32 product, rounded by torch
    assert torch.isinf(expected).any() and (expected != values.float() * (1 + 2.0**-7)).any()
    assert torch.equal(out.result().reshape(-1), expected)  # by value: -0 + 0 is +0 in the kernel's fp32 sum


def test_launches_run_on_the_requested_device_and_restore_the_current_one(host):
    """The shim simulates two devices: a launch for device 1 runs with device 1 current, and device 0 is
    current again afterwards; a device that does not exist is a RuntimeError naming it, before any launch."""
    x, y = torch.ones(1, 1, 2, 2), torch.empty(1, 1, 2, 2)
    assert host.device_info()["device_count"] == 2
    host.bilinear(x.data_ptr(), "float32", 1, 2, 2, 1, 2, 2, 0, y.data_ptr(), device=1, stream=0)
    assert host.host_shim_devices() == {"current": 0, "last_launch": 1}
    assert torch.equal(y, x)
    with pytest.raises(RuntimeError, match="cannot make CUDA device 2 current: invalid device ordinal"):
        host.bilinear(x.data_ptr(), "float32", 1, 2, 2, 1, 2, 2, 0, y.data_ptr(), device=2, stream=0)
    assert host.host_shim_devices() == {"current": 0, "last_launch": 1}


def test_bad_dtype_and_null_pointers_are_value_errors(host):
    x = torch.ones(4)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16, not float64"):
        host.bilinear(x.data_ptr(), "float64", 1, 2, 2, 1, 2, 2, 0, x.data_ptr(), device=0, stream=0)
    with pytest.raises(ValueError, match="null device pointer"):
        host.bilinear(0, "float32", 1, 2, 2, 1, 2, 2, 0, x.data_ptr(), device=0, stream=0)

"""GPU tier: the Triton backend on CUDA at full image sizes (skips without CUDA, with the reason).

The same kernels and model are checked on CPU by the interpreter tier (test_triton_kernels.py,
test_triton_model.py) at small shapes; here: 512x512 and 700x605, fp32 with exact-fp32 tl.dot
(input_precision="ieee") and with TF32, fp16 and bf16 (bf16 only here: the interpreter's bf16 tl.dot
is wrong). The reference is the multi-branch model in fp32 on the CPU, so cuDNN's own TF32 default
cannot leak into it.
"""

import pytest
import torch
import torch.nn.functional as F

import alnet_fast
from alnet_fast.backends.triton.ops import TritonOps
from alnet_fast.testing import dice, random_alnet
from conftest import requires_cuda

pytestmark = [requires_cuda, pytest.mark.gpu]

# max|diff| / max|ref| bounds for the whole model, and the Dice floor of masks at the median logit.
# ieee: fp32 throughout (the bound). tf32: 10-bit mantissa inputs (2^-11 relative per operand)
# through ~27 layers; fp16: 11-bit storage per layer; bf16: 8-bit storage (2^-9) per layer.
# Measured for PyTorch's own CPU fp16 / bf16 convs on random_alnet(seed=11) at 1x3x256x256:
# fp16 2.0e-3 and Dice 0.994, bf16 1.3e-2 and Dice 0.976 (half the pixels sit near the median
# threshold, so bf16 flips a few percent of them): floors 0.99 (the issue's) and 0.95.
MODEL_TOLERANCE = {"ieee": 1e-4, "tf32": 1e-2, torch.float16: 2e-2, torch.bfloat16: 1e-1}
DICE_FLOOR = {"ieee": 0.999, "tf32": 0.99, torch.float16: 0.99, torch.bfloat16: 0.95}


@pytest.fixture(scope="module", params=[(1, 3, 512, 512), (1, 3, 700, 605)], ids=["512x512", "700x605"])
def model_and_reference(request):
    model = random_alnet(seed=11)
    x = torch.randn(request.param, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        model.decoder.classifier.bias -= model(x).median()  # about half the pixels foreground
        ref = model(x)
    return model, x, ref


def run_triton(model, x, dtype=torch.float32, input_precision="ieee"):
    ops = TritonOps(input_precision)
    assert ops.unavailable_reason(torch.device("cuda"), dtype) is None
    folded = ops.prepare(alnet_fast.reparameterize(model).to("cuda", dtype))
    with torch.no_grad():
        return folded(x.to("cuda", dtype).contiguous(memory_format=torch.channels_last), ops).float().cpu()


def check_model(out, ref, key):
    err, scale = (out - ref).abs().max().item(), ref.abs().max().item()
    assert err <= MODEL_TOLERANCE[key] * scale, f"{key}: max|diff| {err:.3g} vs max|ref| {scale:.3g}"
    assert dice((out > 0).numpy(), (ref > 0).numpy()) >= DICE_FLOOR[key]


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
def test_model_fp32(model_and_reference, precision):
    model, x, ref = model_and_reference
    check_model(run_triton(model, x, torch.float32, precision), ref, precision)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_model_half_precision(model_and_reference, dtype):
    model, x, ref = model_and_reference
    check_model(run_triton(model, x, dtype), ref, dtype)


def test_load_runs_the_whole_graph_on_triton(model_and_reference):
    model, x, _ = model_and_reference
    seg = alnet_fast.load(model, backend="triton", device="cuda", dtype=torch.float32, input_precision="ieee",
                          cuda_graphs=False)
    assert seg.backend == "triton" and seg.graphs is None
    logits = seg.logits(x)  # padded to a multiple of 32 and cropped back
    ref = alnet_fast.load(model, backend="torch", device="cpu", fold=False).logits(x)  # same padding
    check_model(logits, ref, "ieee")


def test_load_defaults_on_cuda_are_fp16_tensor_cores_and_graphs(model_and_reference):
    model, x, _ = model_and_reference
    seg = alnet_fast.load(model, backend="triton", device="cuda")
    assert seg.dtype == torch.float16 and seg.graphs is not None
    ref = alnet_fast.load(model, backend="torch", device="cpu", fold=False).logits(x)
    check_model(seg.logits(x), ref, torch.float16)
    check_model(seg.logits(x), ref, torch.float16)  # the replay of the graph captured by the first call
    assert len(seg.graphs.captured) == 1
    fp32 = alnet_fast.load(model, backend="triton", device="cuda", dtype=torch.float32)
    assert fp32.ops.input_precision == "tf32"
    check_model(fp32.logits(x), ref, "tf32")


# Kernel level, 512x512 and 700x605: bounds relative to max|ref| (float64 reference from the same inputs).
# ieee fp32: accumulation order only; tf32: operands rounded to 10-bit mantissas (K up to 288 terms);
# fp16 / bf16: exact products in fp32, one rounding of the output (2^-11 resp. 2^-9, doubled).
KERNEL_TOLERANCE = {"ieee": 1e-5, "tf32": 5e-3, torch.float16: 1e-3, torch.bfloat16: 4e-3}


@pytest.mark.parametrize("hw", [(512, 512), (700, 605)])
@pytest.mark.parametrize("cin,stride", [(3, 2), (32, 1), (32, 2)])
@pytest.mark.parametrize("mode", ["ieee", "tf32", torch.float16, torch.bfloat16], ids=str)
def test_conv3x3_kernel_full_size(hw, cin, stride, mode):
    dtype = mode if isinstance(mode, torch.dtype) else torch.float32
    precision = mode if isinstance(mode, str) else "ieee"
    x = torch.randn(2, cin, *hw, device="cuda").to(dtype).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(40, cin, 3, 3, device="cuda").to(dtype), torch.randn(40, device="cuda").to(dtype)
    y = TritonOps(precision).conv3x3_bias_relu(x, weight, bias, stride, True)
    ref = torch.relu(F.conv2d(x.double(), weight.double(), bias.double(), stride=stride, padding=1))
    err, scale = (y.double() - ref).abs().max().item(), ref.abs().max().item()
    assert err <= KERNEL_TOLERANCE[mode] * scale, f"max|diff| {err:.3g} vs max|ref| {scale:.3g}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_lraspp_gate_kernel_full_size(dtype):
    x = torch.randn(2, 640, 16, 19, device="cuda").to(dtype)  # the 700x605 bottleneck (H/32 x W/32)
    wf, bf = (0.05 * torch.randn(128, 640, 1, 1, device="cuda")).to(dtype), torch.randn(128, device="cuda").to(dtype)
    wg, bg = (0.05 * torch.randn(128, 640, 1, 1, device="cuda")).to(dtype), torch.randn(128, device="cuda").to(dtype)
    y = TritonOps("ieee").lraspp_gate(x, wf, bf, wg, bg)
    xd = x.double()
    gate = F.hardsigmoid(F.conv2d(xd.mean((2, 3), keepdim=True), wg.double(), bg.double()))
    ref = torch.relu(F.conv2d(xd, wf.double(), bf.double())) * gate
    tol = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 4e-3}[dtype]
    assert (y.double() - ref).abs().max().item() <= tol * ref.abs().max().item()


def test_autotune_writes_the_disk_cache_and_matches(tmp_path):
    from alnet_fast.backends.triton.conv3x3 import conv_bias_act, pack_conv_weight
    from alnet_fast.backends.triton.tiles import TileCache

    x = torch.randn(1, 16, 33, 35, device="cuda").contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(24, 16, 3, 3, device="cuda"), torch.randn(24, device="cuda")
    cache = TileCache(torch.cuda.get_device_name(), tmp_path)
    y = conv_bias_act(x, pack_conv_weight(weight, bias), 1, True, input_precision="ieee", autotune=True, cache=cache)
    assert cache.path.exists() and len(TileCache(torch.cuda.get_device_name(), tmp_path)._load()) == 1
    ref = torch.relu(F.conv2d(x.double(), weight.double(), bias.double(), padding=1))
    assert (y.double() - ref).abs().max().item() <= KERNEL_TOLERANCE["ieee"] * ref.abs().max().item()

"""Interpreter tier: each Triton kernel against the PyTorch reference, on small shapes.

Runs on CPU through the Triton interpreter (conftest sets TRITON_INTERPRET=1 without CUDA) and, on a
machine with CUDA, on the GPU (fp32 with input_precision="ieee", so the same tolerances hold; the
backend's default for fp32 is TF32, checked by the GPU tier). Every tile of the GPU tile space runs here
too (test_every_gpu_tile_matches_reference), so a tile that breaks the flattened taps x Cin loop fails on CPU.

Tolerances, relative to max|ref| (ref computed in float64 from the same, already-rounded inputs):
- fp32: 1e-5. Accumulation is fp32 over K <= 9 * 64 = 576 terms: the error grows like
  sqrt(K) * 2^-24 ~ 1.4e-6 of the largest partial sums, so 1e-5 leaves ~7x margin.
- fp16: 1e-3. Products of fp16 values are exact in the fp32 accumulator; the output is rounded
  once to fp16 (half an ulp = 2^-11 ~ 4.9e-4 of |y| at most), so 1e-3 is 2x that.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from alnet_fast.backends.triton.bilinear import resize_bilinear
from alnet_fast.backends.triton.conv3x3 import K_ALIGN, conv_bias_act, pack_conv_weight
from alnet_fast.backends.triton.lraspp_gate import channel_mean, hardsigmoid_gate, lraspp_gate
from alnet_fast.backends.triton.tiles import BLOCK_KS, BLOCK_MS, BLOCK_NS, Tile

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RTOL = {torch.float32: 1e-5, torch.float16: 1e-3}


def assert_close_to(y: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> None:
    """max|y - ref| <= RTOL[dtype] * max|ref| (see the module docstring for the bounds)."""
    assert y.shape == ref.shape
    err = (y.double().cpu() - ref.double().cpu()).abs().max().item()
    scale = ref.abs().max().item()
    assert err <= RTOL[dtype] * scale, f"max|diff| {err:.3g} > {RTOL[dtype]:g} * max|ref| {scale:.3g}"


def rand(*shape, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64).to(device=DEVICE, dtype=dtype)


def ref_conv(x, weight, bias, stride, relu):
    y = F.conv2d(x.double().cpu(), weight.double().cpu(), bias.double().cpu(), stride=stride,
                 padding=weight.shape[-1] // 2)
    return torch.relu(y) if relu else y


# Cin 3 (the stem), 16, 32, 48 (not a power of 2); every Cin with both strides and both dtypes;
# odd sizes 7x9 and 13x17 and batches 1 and 3 alternate across the cases; Cout 24 / 40 are not
# multiples of any tile.
CONV_CASES = [(cin, stride, dtype, (7, 9) if (i % 2) else (13, 17), 3 if (i // 2) % 2 else 1)
              for i, (cin, stride, dtype) in enumerate(
                  (c, s, d) for c in (3, 16, 32, 48) for s in (1, 2) for d in (torch.float32, torch.float16))]


@pytest.mark.parametrize("cin,stride,dtype,hw,batch", CONV_CASES,
                         ids=[f"cin{c}-s{s}-{str(d)[6:]}-{h}x{w}-n{n}" for c, s, d, (h, w), n in CONV_CASES])
def test_conv3x3_matches_reference(cin, stride, dtype, hw, batch):
    cout = 24 if cin % 32 else 40
    x = rand(batch, cin, *hw, dtype=dtype).contiguous(memory_format=torch.channels_last)
    weight, bias = rand(cout, cin, 3, 3, dtype=dtype), rand(cout, dtype=dtype)
    y = conv_bias_act(x, pack_conv_weight(weight, bias), stride=stride, relu=True, input_precision="ieee")
    assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
    assert_close_to(y, ref_conv(x, weight, bias, stride, relu=True), dtype)


# Every (BLOCK_M, BLOCK_N, BLOCK_K) the GPU path can launch (tiles.py), in fp32 and fp16, each on a conv
# whose Cin (50 -> Cin_pad 64) every BLOCK_K divides, Cout 20 (masked in every BLOCK_N) and 2 x 5 x 7 outputs
# (masked in every BLOCK_M); strides alternate. Same tolerances as above.
GPU_TILES = list(itertools.product(BLOCK_MS, BLOCK_NS, BLOCK_KS))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("block_m,block_n,block_k", GPU_TILES, ids=["x".join(map(str, t)) for t in GPU_TILES])
def test_every_gpu_tile_matches_reference(block_m, block_n, block_k, dtype):
    stride = 1 + (block_m + block_n + block_k) // 16 % 2
    x = rand(2, 50, 5 * stride, 7 * stride, dtype=dtype).contiguous(memory_format=torch.channels_last)
    weight, bias = rand(20, 50, 3, 3, dtype=dtype), rand(20, dtype=dtype)
    tile = Tile(block_m, block_n, block_k, num_stages=3)
    y = conv_bias_act(x, pack_conv_weight(weight, bias), stride=stride, relu=False, input_precision="ieee", tile=tile)
    assert_close_to(y, ref_conv(x, weight, bias, stride, relu=False), dtype)


def test_conv3x3_without_relu_keeps_negatives_and_accepts_nchw():
    x = rand(2, 16, 9, 7)  # NCHW-contiguous input: the kernel reads it through strides after one copy
    weight, bias = rand(20, 16, 3, 3), rand(20)
    y = conv_bias_act(x, pack_conv_weight(weight, bias), stride=2, relu=False, input_precision="ieee")
    assert (y < 0).any()
    assert_close_to(y, ref_conv(x, weight, bias, 2, relu=False), torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_conv1x1_is_one_tap_of_the_same_gemm(dtype):
    x = rand(3, 40, 5, 7, dtype=dtype)
    weight, bias = rand(36, 40, 1, 1, dtype=dtype), rand(36, dtype=dtype)
    y = conv_bias_act(x, pack_conv_weight(weight, bias), stride=1, relu=False, input_precision="ieee")
    assert_close_to(y, ref_conv(x, weight, bias, 1, relu=False), dtype)


def test_pack_conv_weight_pads_cin_with_zeros():
    weight, bias = rand(8, 3, 3, 3), rand(8)
    packed = pack_conv_weight(weight, bias)
    assert packed.weight.shape == (9, K_ALIGN, 8) and (packed.cin, packed.cout, packed.ksize) == (3, 8, 3)
    assert torch.equal(packed.weight[:, 3:], torch.zeros_like(packed.weight[:, 3:]))
    # tap t = 3 * kh + kw holds weight[:, :, kh, kw] transposed to [Cin, Cout]
    assert torch.equal(packed.weight[5, :3], weight[:, :, 1, 2].t())


def test_channel_mean_and_gate():
    x = rand(3, 70, 9, 11)  # C = 70 spans two channel blocks, HW = 99 two pixel blocks
    mean = channel_mean(x)
    assert torch.allclose(mean.double().cpu(), x.double().cpu().mean(dim=(2, 3)), rtol=0, atol=1e-6)
    w_gate, b_gate = rand(40, 70, 1, 1), rand(40)
    gate = hardsigmoid_gate(mean, w_gate, b_gate)
    ref = F.hardsigmoid(mean.double().cpu() @ w_gate.double().cpu()[:, :, 0, 0].t() + b_gate.double().cpu())
    assert ((gate > 0) & (gate < 1)).any() and (gate == 0).any()  # inputs exercise both clamps ...
    assert torch.allclose(gate.double().cpu(), ref, rtol=0, atol=1e-5)  # ... and the linear part


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("batch,hw", [(1, (7, 9)), (3, (4, 6))])
def test_lraspp_gate_matches_reference(dtype, batch, hw):
    cin, cout = 48, 40
    x = rand(batch, cin, *hw, dtype=dtype)
    w_feat, b_feat = rand(cout, cin, 1, 1, dtype=dtype), rand(cout, dtype=dtype)
    w_gate, b_gate = 0.3 * rand(cout, cin, 1, 1, dtype=dtype), rand(cout, dtype=dtype)
    y = lraspp_gate(x, pack_conv_weight(w_feat, b_feat), w_gate, b_gate, input_precision="ieee")
    xd = x.double().cpu()
    gate = F.hardsigmoid(F.conv2d(xd.mean(dim=(2, 3), keepdim=True), w_gate.double().cpu(), b_gate.double().cpu()))
    ref = torch.relu(F.conv2d(xd, w_feat.double().cpu(), b_feat.double().cpu())) * gate
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert_close_to(y, ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("src,dst", [((4, 5), (13, 17)), ((7, 9), (7, 9)), ((13, 17), (5, 4))])
def test_resize_bilinear_matches_interpolate(dtype, src, dst):
    x = rand(3, 40, *src, dtype=dtype)
    y = resize_bilinear(x, dst)
    ref = F.interpolate(x.double().cpu(), size=dst, mode="bilinear", align_corners=False)
    assert_close_to(y, ref, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_upsample_add_fuses_the_skip(dtype):
    x, skip = rand(1, 24, 4, 5, dtype=dtype), rand(1, 24, 7, 9, dtype=dtype)
    y = resize_bilinear(x, (7, 9), skip=skip.contiguous(memory_format=torch.channels_last))
    ref = F.interpolate(x.double().cpu(), size=(7, 9), mode="bilinear", align_corners=False) + skip.double().cpu()
    assert_close_to(y, ref, dtype)

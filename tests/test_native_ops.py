"""Native CPU kernels vs float64 references, at every SIMD level this CPU has, plus typed errors.

Tolerances:
- fp32: max|diff| <= 1e-5 * max|ref|. Inputs, weights and the reference are exact; the kernels
  accumulate in fp32 (K <= 9 * 130 terms), whose rounding error is ~1e-7 relative, so 1e-5 leaves ~50x.
- bf16: the reference is computed in float64 from the same bf16-rounded inputs and weights, so the
  products are exact and only two things differ: fp32 accumulation (<= 1e-5 * max|ref|, as above) and the
  single final rounding to bf16 (at most half an ulp: 2^-9 |ref| with round-to-nearest-even). The bound
  2^-8 |ref| + 1e-4 * max|ref| allows both with margin; an indexing or packing error is O(max|ref|).
"""

import pytest
import torch
import torch.nn.functional as F

from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps
from alnet_fast.backends.native.packing import pack_cpu_conv

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")



def fp32_close(out: torch.Tensor, ref: torch.Tensor) -> bool:
    return (out.double() - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()


def bf16_close(out: torch.Tensor, ref: torch.Tensor) -> bool:
    err = (out.double() - ref).abs()
    return bool((err <= 2.0**-8 * ref.abs() + 1e-4 * ref.abs().max()).all())


def conv_ref(x, w, b, stride, relu, k):
    y = F.conv2d(x.double(), w.double(), b.double(), stride=stride, padding=k // 2)
    return torch.relu(y) if relu else y


# (N, Cin, Cout, H, W, stride, relu): Cin 1, 2, 3, 4 (stems: the im2col path, with both image edges inside
# one patch at width 1), odd sizes, Cout tails of 1..15
# lanes, more than two 16-channel blocks, and widths below / above / not a multiple of the 12-pixel tile.
CONV3_CASES = [
    (1, 3, 32, 17, 13, 2, True),
    (2, 1, 32, 20, 18, 2, True),
    (2, 2, 16, 5, 1, 1, True),
    (1, 1, 32, 3, 7, 1, False),
    (1, 4, 16, 10, 9, 1, False),
    (2, 3, 5, 9, 30, 1, False),
    (2, 32, 32, 9, 11, 1, True),
    (1, 64, 20, 7, 5, 2, True),
    (1, 17, 50, 13, 27, 1, False),
    (1, 128, 128, 8, 8, 1, True),
    (3, 5, 33, 1, 1, 2, True),
    (1, 40, 64, 6, 25, 2, True),
]


@pytest.mark.parametrize("case", CONV3_CASES, ids=str)
def test_conv3x3_fp32(isa, case):
    n, cin, cout, h, w, stride, relu = case
    x, wt, b = torch.randn(n, cin, h, w), torch.randn(cout, cin, 3, 3) / (9 * cin) ** 0.5, torch.randn(cout)
    out = NativeOps().conv3x3_bias_relu(x, wt, b, stride, relu)
    ref = conv_ref(x, wt, b, stride, relu, 3)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert fp32_close(out, ref)


@pytest.mark.parametrize("case", CONV3_CASES, ids=str)
def test_conv3x3_bf16(isa, case):
    n, cin, cout, h, w, stride, relu = case
    x = torch.randn(n, cin, h, w).bfloat16()
    wt, b = (torch.randn(cout, cin, 3, 3) / (9 * cin) ** 0.5).bfloat16(), torch.randn(cout).bfloat16()
    out = NativeOps().conv3x3_bias_relu(x, wt, b, stride, relu)
    assert out.dtype == torch.bfloat16
    assert bf16_close(out, conv_ref(x, wt, b, stride, relu, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
# (N, Cin, Cout, H, W, relu); widths of whole 16-pixel groups (32, 16) let AMX read x in place, across images.
@pytest.mark.parametrize("case", [(1, 128, 1, 9, 14, False), (2, 40, 20, 5, 7, True), (1, 3, 16, 4, 4, True),
                                  (2, 64, 24, 3, 32, True), (1, 32, 1, 5, 16, False)], ids=str)
def test_conv1x1(isa, case, dtype):
    n, cin, cout, h, w, relu = case
    x, wt, b = (torch.randn(n, cin, h, w).to(dtype), (torch.randn(cout, cin, 1, 1) / cin**0.5).to(dtype),
                torch.randn(cout).to(dtype))
    out = NativeOps().conv1x1_bias_relu(x, wt, b, relu)
    ref = conv_ref(x, wt, b, 1, relu, 1)
    assert (fp32_close if dtype == torch.float32 else bf16_close)(out, ref)


def lraspp_ref(x, wf, bf, wg, bg):
    x, wf, bf, wg, bg = (t.double() for t in (x, wf, bf, wg, bg))
    gate = F.hardsigmoid(F.conv2d(x.mean((2, 3), keepdim=True), wg, bg))
    return torch.relu(F.conv2d(x, wf, bf)) * gate


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lraspp_gate(isa, dtype):
    x = torch.randn(2, 80, 5, 7).to(dtype)
    wf, bf = (torch.randn(40, 80, 1, 1) / 9).to(dtype), torch.randn(40).to(dtype)
    wg, bg = (torch.randn(40, 80, 1, 1) / 3).to(dtype), (3 * torch.randn(40)).to(dtype)  # gates in 0, 1 and between
    out = NativeOps().lraspp_gate(x, wf, bf, wg, bg)
    assert (fp32_close if dtype == torch.float32 else bf16_close)(out, lraspp_ref(x, wf, bf, wg, bg))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("sizes", [((4, 5), (7, 9)), ((16, 16), (32, 32)), ((3, 8), (3, 8)), ((9, 9), (4, 5))],
                         ids=str)
@pytest.mark.parametrize("channels", [19, 3, 1])  # 19: one loop vectorised over channels; 1, 3: x then y pass
def test_upsample_add_and_resize(isa, dtype, sizes, channels):
    (h, w), (oh, ow) = sizes
    x, skip = torch.randn(2, channels, h, w).to(dtype), torch.randn(2, channels, oh, ow).to(dtype)
    up = F.interpolate(x.double(), size=(oh, ow), mode="bilinear", align_corners=False)
    close = fp32_close if dtype == torch.float32 else bf16_close
    assert close(NativeOps().upsample_add(x, skip), up + skip.double())
    assert close(NativeOps().resize_bilinear(x, (oh, ow)), up)


@pytest.mark.parametrize("threads", [1, 3])
def test_bilinear_bands_split_inside_and_across_images(isa, threads):
    """Each thread interpolates its band's source rows into its own ring: with 3 threads, 3 images of 7 output rows
    split as 7 / 7 / 7 rows and 11 rows as 3 / 4 / 4, so bands start inside an image and span two images."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for (h, w), (oh, ow) in [((4, 6), (7, 9)), ((5, 5), (11, 3))]:
            x, skip = torch.randn(3, 19, h, w), torch.randn(3, 19, oh, ow)
            up = F.interpolate(x.double(), size=(oh, ow), mode="bilinear", align_corners=False)
            assert fp32_close(NativeOps().upsample_add(x, skip), up + skip.double())
    finally:
        torch.set_num_threads(previous)


SENTINEL = 7.0  # what a bordered output buffer holds before its producer writes it, border included


def bordered(x: torch.Tensor, border: int, fill: float = 0.0, slack: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x [N, C, H, W] stored inside a border of ``fill`` (then ``slack`` pixels) -> (flat buffer, interior view)."""
    n, c, h, w = x.shape
    buffer = torch.full((n * (h + 2 * border) * (w + 2 * border) * c + slack * c,), fill, dtype=x.dtype)
    full = buffer[:n * (h + 2 * border) * (w + 2 * border) * c].view(n, h + 2 * border, w + 2 * border, c)
    interior = full[:, border:border + h, border:border + w].permute(0, 3, 1, 2)
    interior.copy_(x)
    return buffer, interior


# (Cin, Cout, k, stride, x border, y border): the im2col stem, AMX / bf16-pair channel counts read in place,
# a Cin the kernels must pad (40 -> 64 for AMX), Winograd (fp32, 32 -> 32, 3x3 stride 1), a border wider than
# the conv's padding, and a 1x1 conv reading a bordered x whose rows are not whole 16-pixel groups.
BORDER_CASES = [(3, 32, 3, 2, 1, 1), (32, 32, 3, 1, 1, 1), (32, 64, 3, 2, 1, 0), (40, 16, 3, 1, 2, 1),
                (32, 32, 3, 1, 1, 2), (64, 20, 1, 1, 1, 0), (32, 32, 1, 1, 0, 1)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", BORDER_CASES, ids=str)
def test_conv_reads_and_writes_bordered_buffers(isa, dtype, case):
    """x_pad / y_pad (what NativePlan chains convs with): x read in place from inside its zero border, y written
    inside its border, which it zeroes (the buffer may have held anything), the interior equal to the op's
    borderless output."""
    cin, cout, k, stride, x_pad, y_pad = case
    x = torch.randn(2, cin, 9, 13).to(dtype)
    wt, b = (torch.randn(cout, cin, k, k) / (k * k * cin) ** 0.5).to(dtype), torch.randn(cout).to(dtype)
    ops = NativeOps()
    expected = ops.conv3x3_bias_relu(x, wt, b, stride) if k == 3 else ops.conv1x1_bias_relu(x, wt, b)
    x_buffer, _ = bordered(x, x_pad, slack=native.cpu_module().bordered_slack_pixels() if x_pad else 0)
    y_buffer, y = bordered(torch.empty_like(expected), y_pad, fill=SENTINEL)
    y.fill_(float("nan"))
    ops.cpu.conv(x_buffer.data_ptr(), dtype, 2, 9, 13, wt, b, stride, True, y_buffer.data_ptr(), x_pad, y_pad)()
    assert torch.equal(y_buffer, bordered(expected, y_pad)[0])


@pytest.mark.parametrize("channels", [19, 1])
def test_bilinear_writes_inside_a_border(isa, channels):
    x, skip = torch.randn(2, channels, 5, 7).bfloat16(), torch.randn(2, channels, 10, 14).bfloat16()
    ops = NativeOps()
    expected = ops.upsample_add(x, skip)
    y_buffer, y = bordered(torch.empty_like(expected), 1, fill=SENTINEL)
    x, skip = x.contiguous(memory_format=torch.channels_last), skip.contiguous(memory_format=torch.channels_last)
    ops.cpu.bilinear(x.data_ptr(), x.dtype, 2, 5, 7, channels, (10, 14), skip.data_ptr(), y_buffer.data_ptr(),
                          1)()
    assert torch.equal(y_buffer, bordered(expected, 1)[0])


def test_any_memory_format_and_strides_give_the_same_result():
    ops = NativeOps()
    base = torch.randn(2, 24, 11, 20)
    wt, b = torch.randn(16, 12, 3, 3), torch.randn(16)
    x = base[:, ::2, :, 3:17]  # a non-contiguous view
    ref = ops.conv3x3_bias_relu(x.contiguous(memory_format=torch.channels_last), wt, b, 2)
    assert torch.equal(ops.conv3x3_bias_relu(x, wt, b, 2), ref)
    assert torch.equal(ops.conv3x3_bias_relu(x.contiguous(), wt, b, 2), ref)


def test_packed_weights_follow_in_place_updates():
    ops = NativeOps()
    x, wt, b = torch.randn(1, 8, 6, 6), torch.randn(16, 8, 3, 3), torch.randn(16)
    ops.conv3x3_bias_relu(x, wt, b)
    with torch.no_grad():
        wt.mul_(-2)
        b.add_(1)
    assert fp32_close(ops.conv3x3_bias_relu(x, wt, b), conv_ref(x, wt, b, 1, True, 3))


@pytest.mark.parametrize("pairs", [False, True])
def test_packed_layout(pairs):
    wt, b = torch.randn(20, 5, 3, 3), torch.randn(20)
    packed, bias = pack_cpu_conv(wt, b, pairs)
    assert bias.shape == (32,) and torch.equal(bias[:20], b) and not bias[20:].any()
    if pairs:  # [Cout/16, k, k, Cin/2, 16, 2], Cin padded 5 -> 6
        assert packed.shape == (2, 3, 3, 3, 16, 2)
        assert packed[1, 2, 0, 2, 3, 0] == wt[19, 4, 2, 0].bfloat16() and packed[1, 2, 0, 2, 3, 1] == 0
    else:  # [Cout/16, k, k, Cin, 16]
        assert packed.shape == (2, 3, 3, 5, 16)
        assert packed[1, 2, 0, 4, 3] == wt[19, 4, 2, 0] and not packed[1, :, :, :, 4:].any()


# Invalid calls: typed errors raised in Python before any native code runs.

def test_rejects_float16_on_cpu():
    x, wt, b = torch.randn(1, 4, 5, 5).half(), torch.randn(8, 4, 3, 3).half(), torch.randn(8).half()
    with pytest.raises(TypeError, match="float16"):
        NativeOps().conv3x3_bias_relu(x, wt, b)


@pytest.mark.parametrize("bad", ["int", "rank", "cin", "bias", "stride", "mixed", "device"])
def test_rejects_invalid_conv_calls(bad):
    x, wt, b, stride = torch.randn(1, 4, 5, 5), torch.randn(8, 4, 3, 3), torch.randn(8), 1
    error = ValueError
    if bad == "int":
        x, error = x.int(), TypeError
    elif bad == "rank":
        x = x[0]
    elif bad == "cin":
        wt = torch.randn(8, 3, 3, 3)
    elif bad == "bias":
        b = torch.randn(7)
    elif bad == "stride":
        stride = 3
    elif bad == "mixed":
        b, error = b.double(), TypeError
    elif bad == "device":
        x = x.to("meta")
    with pytest.raises(error):
        NativeOps().conv3x3_bias_relu(x, wt, b, stride)


def test_rejects_unsupported_layout_and_device():
    x = torch.randn(1, 4, 5, 5)
    wt, b = torch.randn(8, 4, 3, 3), torch.randn(8)
    with pytest.raises(TypeError, match="strided"):
        NativeOps().conv3x3_bias_relu(x.to_sparse(), wt, b)
    with pytest.raises(RuntimeError, match="meta"):
        NativeOps().conv3x3_bias_relu(x.to("meta"), wt.to("meta"), b.to("meta"))


def test_rejects_mismatched_upsample_and_gate():
    with pytest.raises(ValueError):
        NativeOps().upsample_add(torch.randn(1, 3, 4, 4), torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError):
        x = torch.randn(1, 8, 4, 4)
        NativeOps().lraspp_gate(x, torch.randn(4, 8, 1, 1), torch.randn(4), torch.randn(5, 8, 1, 1), torch.randn(5))


def test_isa_override_is_checked():
    module = native.cpu_module()
    with pytest.raises(ValueError, match="unknown ISA"):
        module.set_active_isa("sse9")
    with pytest.raises(TypeError):
        module.conv2d(0, "float32")  # wrong arity: pybind11's typed error, not a crash
    with pytest.raises(ValueError, match="null"):
        module.bilinear(0, "float32", 1, 1, 1, 1, 1, 1, 0, 0)


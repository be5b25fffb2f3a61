"""The native CPU Winograd F(2x2, 3x3) conv (fp32, 3x3, stride 1, Cin/Cout multiples of 16, >= 32, AVX-512).

Tolerance: max|diff| <= 1e-5 * max|ref| + 1e-6 against a float64 conv of the same fp32 inputs, as for the
whole model (tests/test_native_model.py). Winograd adds rounding on top of the direct conv's: U = G g G^T
is rounded once to fp32 (|U| <= 2.25 max|g|), the input transform sums 4 inputs, the output transform 9
products sums, so each output carries ~10x the direct conv's fp32 error; measured here at most 4e-7 *
max|ref| (Cin = 128, i.e. 16 GEMMs over K = 128), which leaves 25x margin. A wrong tile, transform sign or
packing index is O(max|ref|).
"""

import pytest
import torch
import torch.nn.functional as F

from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps
from alnet_fast.backends.native.packing import pack_cpu_conv, pack_cpu_winograd

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")


def _has_avx512() -> bool:
    module = native.cpu_module()
    return module is not None and module.build_info()["isa_detected"] in ("avx512", "avx512_bf16", "amx_bf16")


requires_avx512 = pytest.mark.skipif(not _has_avx512(), reason="the Winograd path needs AVX-512")


@pytest.fixture
def module():
    """The CPU module; restores the detected ISA level after the test."""
    module = native.cpu_module()
    yield module
    module.set_active_isa(module.build_info()["isa_detected"])


def close(out: torch.Tensor, ref: torch.Tensor) -> bool:
    return (out.double() - ref).abs().max().item() <= 1e-5 * ref.abs().max().item() + 1e-6


def conv_ref(x, w, b, relu):
    y = F.conv2d(x.double(), w.double(), b.double(), padding=1)
    return torch.relu(y) if relu else y


def make_conv(n, cin, cout, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin, 3, 3, generator=g) / (9 * cin) ** 0.5
    return x, weight, torch.randn(cout, generator=g)


def test_pack_transforms_one_tile_exactly():
    """A^T [U . (B^T d B)] A of the packed U equals the 2x2 correlation of a 4x4 tile d (float64 maths)."""
    b_t = torch.tensor([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=torch.float64)
    a_t = torch.tensor([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=torch.float64)
    cout, cin = 32, 16
    weight = torch.randn(cout, cin, 3, 3, dtype=torch.float64)
    d = torch.randn(cin, 4, 4, dtype=torch.float64)
    u = pack_cpu_winograd(weight).double()  # [16, Cout/16, Cin, 16]
    assert u.shape == (16, cout // 16, cin, 16)
    u = u.permute(1, 3, 2, 0).reshape(cout, cin, 4, 4)  # back to [Cout, Cin, 4, 4]
    y = torch.einsum("ij,ocjk,kl->ocil", a_t, u * (b_t @ d @ b_t.T), a_t.T).sum(1)
    ref = F.conv2d(d[None], weight)[0]  # [Cout, 2, 2]
    assert torch.allclose(y, ref, rtol=0, atol=1e-5 * ref.abs().max().item())  # U is rounded to fp32


@requires_avx512
def test_dispatch_rule(module):
    assert module.conv_uses_winograd(128, 128, 3, 1)
    assert module.conv_uses_winograd(32, 48, 3, 1)
    assert not module.conv_uses_winograd(128, 128, 3, 2)  # stride 2: direct
    assert not module.conv_uses_winograd(128, 128, 1, 1)  # 1x1
    assert not module.conv_uses_winograd(16, 128, 3, 1)  # too few input channels to pay for the transforms
    assert not module.conv_uses_winograd(40, 128, 3, 1)  # Cin not a multiple of 16
    assert not module.conv_uses_winograd(32, 24, 3, 1)  # Cout not a multiple of 16
    module.set_active_isa("avx2")
    assert not module.conv_uses_winograd(128, 128, 3, 1)  # no AVX-512: the direct fallback


@requires_avx512
def test_entry_runs_winograd_weights(module):
    """conv2d reads winograd_weight where the rule says so (zero U: y = bias), and ignores it elsewhere."""
    x, weight, bias = make_conv(1, 32, 32, 6, 5)
    packed, packed_bias = pack_cpu_conv(weight, bias, False)
    zeros = torch.zeros(16, 2, 32, 16)
    for stride, expect in ((1, bias.view(1, -1, 1, 1).expand(1, 32, 6, 5)),
                           (2, F.conv2d(x.double(), weight.double(), bias.double(), stride=2, padding=1))):
        ho, wo = (6 - 1) // stride + 1, (5 - 1) // stride + 1
        y = torch.empty(1, 32, ho, wo).contiguous(memory_format=torch.channels_last)
        module.conv2d(x.data_ptr(), "float32", 1, 6, 5, 32, packed.data_ptr(), False, packed_bias.data_ptr(), 0,
                      y.data_ptr(), 32, 3, stride, False, zeros.data_ptr())
        assert close(y, expect.double())


# (N, Cin, Cout, H, W): odd sizes (partial 2x2 tiles on the bottom and right), fewer tiles than one block,
# Cout = 48 (a single 16-channel block after the pairs), Cin = 48 / 128, batch 3.
CASES = [
    (1, 32, 32, 7, 9),
    (3, 48, 48, 7, 9),
    (1, 128, 48, 33, 17),
    (3, 32, 128, 33, 17),
    (1, 48, 32, 128, 128),
    (1, 128, 128, 40, 40),
]


@requires_avx512
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("n, cin, cout, h, w", CASES)
def test_winograd_matches_float64(module, n, cin, cout, h, w, relu):
    assert module.conv_uses_winograd(cin, cout, 3, 1)
    x, weight, bias = make_conv(n, cin, cout, h, w)
    y = NativeOps().conv3x3_bias_relu(x, weight, bias, 1, relu)
    assert y.shape == (n, cout, h, w) and y.is_contiguous(memory_format=torch.channels_last)
    ref = conv_ref(x, weight, bias, relu)
    assert close(y, ref)
    if relu:
        assert (y >= 0).all()


@pytest.mark.parametrize("isa", ["avx2", "scalar"])
def test_fallback_without_avx512(module, isa):
    """Below AVX-512 the same shapes take the direct kernels, with the same results."""
    module.set_active_isa(isa)
    assert not module.conv_uses_winograd(32, 48, 3, 1)
    x, weight, bias = make_conv(3, 32, 48, 7, 9)
    assert close(NativeOps().conv3x3_bias_relu(x, weight, bias, 1, True), conv_ref(x, weight, bias, True))


@requires_avx512
def test_repacks_after_in_place_update(module):
    x, weight, bias = make_conv(1, 32, 32, 9, 7)
    ops = NativeOps()
    ops.conv3x3_bias_relu(x, weight, bias, 1, False)
    with torch.no_grad():
        weight.mul_(-2.0)
    assert close(ops.conv3x3_bias_relu(x, weight, bias, 1, False), conv_ref(x, weight, bias, False))


@requires_avx512
def test_inference_tensors(module):
    """Inference-mode weights are not cached (no version counter): the Winograd pack is made per call and
    must stay alive through the kernel."""
    with torch.inference_mode():
        x, weight, bias = make_conv(2, 64, 32, 11, 6)
        ops = NativeOps()
        for _ in range(3):
            assert close(ops.conv3x3_bias_relu(x, weight, bias, 1, True), conv_ref(x, weight, bias, True))


@requires_avx512
def test_prepare_packs_stride1_convs_only(module):
    from alnet_fast.graph import FoldedConv

    convs = torch.nn.ModuleList([FoldedConv(*make_conv(1, 32, 32, 1, 1)[1:], stride=s) for s in (1, 2)])
    ops = NativeOps()
    ops.prepare(convs)
    packed = {key for key in ops.weights._packs._entries if key[1] == "cpu-fp32-winograd"}
    assert packed == {(id(convs[0].weight), "cpu-fp32-winograd")}

"""The whole folded model on backend="native" (CPU) vs the multi-branch training model."""

import pytest
import torch

import alnet_fast
from alnet_fast import ALNetConfig, reparameterize
from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps
from alnet_fast.testing import dice, random_alnet

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 96, 160), (1, 3, 45, 37)])
def test_native_fp32_matches_multibranch(shape):
    model = random_alnet(seed=sum(shape))
    x = torch.randn(shape)
    with torch.no_grad():
        ref = model(x)
        out = reparameterize(model)(x, NativeOps())
    # The foundation's parity bound: fp32, only folding and accumulation order differ (22 conv layers).
    assert (out - ref).abs().max().item() <= 1e-5 * ref.abs().max().item() + 1e-6


def test_native_gray_multiclass():
    config = ALNetConfig(in_channels=1, num_classes=3)
    model = random_alnet(config, seed=3)
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        ref = model(x)
        out = reparameterize(model)(x, NativeOps())
    assert (out - ref).abs().max().item() <= 1e-5 * ref.abs().max().item() + 1e-6


def test_native_bf16_masks_match_fp32_reference():
    model = random_alnet(seed=1)
    image = torch.rand(2, 3, 96, 128)
    ref_probs = alnet_fast.load(model, backend="torch", device="cpu", fold=False).predict(image)
    seg = alnet_fast.load(model, backend="native", device="cpu", dtype=torch.bfloat16)
    probs = seg.predict(image)
    # bf16 storage (8-bit mantissa) through 25 layers: probabilities within 0.05, masks by Dice.
    assert abs(probs - ref_probs).max() <= 0.05
    for p, r in zip(probs, ref_probs):
        assert dice(p > 0.5, r > 0.5) >= 0.97


def test_load_native_segmenter():
    model = random_alnet(seed=2)
    seg = alnet_fast.load(model, backend="native", device="cpu")
    assert seg.backend == "native" and "native (requested)" in repr(seg)
    image = torch.rand(3, 70, 50)
    ref = alnet_fast.load(model, backend="torch", device="cpu", fold=False)
    assert seg.segment(image).shape == (70, 50)
    assert dice(seg.segment(image), ref.segment(image)) >= 0.999


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_load_under_inference_mode_packs_weights_once(monkeypatch, dtype):
    """Weights folded under a caller's inference_mode would be inference tensors (no version counter), which the
    pack cache cannot trust: load() builds them outside it, so the second forward repacks nothing."""
    import alnet_fast.backends.native.packing as native_packing

    packs = []
    real_pack = native_packing.pack_cpu_conv
    monkeypatch.setattr(native_packing, "pack_cpu_conv", lambda *args: packs.append(1) or real_pack(*args))
    with torch.inference_mode():
        seg = alnet_fast.load(random_alnet(seed=4), backend="native", device="cpu", dtype=dtype)
        assert not any(p.is_inference() for p in seg.model.parameters())
        x = torch.rand(1, 3, 64, 64)
        first = seg.logits(x)
        packed = len(packs)
        assert torch.equal(seg.logits(x), first)
    assert packed > 0 and len(packs) == packed

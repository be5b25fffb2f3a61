"""Test-time augmentation: the flip/transpose group, equality with manually flipped predictions, flip
invariance, one batched forward pass, and the --tta CLI flag."""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

import alnet_fast
import alnet_fast.cli
from alnet_fast import ALNetConfig
from alnet_fast.testing import random_alnet
from alnet_fast.tta import apply, invert, transforms

SMALL_RGB = ALNetConfig(in_channels=3, widths=(8, 8, 16, 16, 32), depths=(1, 1, 2, 2, 1), context_channels=16,
                        decoder_channels=16, scaling="dtype")
SMALL_3CLASS = ALNetConfig(**{**SMALL_RGB.to_dict(), "in_channels": 1, "num_classes": 3, "scaling": "percentile"})
# fp32 throughout; TTA and the manual reference run the same network on the same pixels, but in batches of
# different sizes and positions (kernel accumulation order may differ) and sum the 4 or 8 members in a
# different order: a few ulp of probabilities in [0, 1]. 1e-5 leaves room for both and is far below any
# change a wrong inverse would make (those are O(0.1) on a random network).
ATOL = 1e-5


@pytest.fixture(scope="module")
def seg():
    return alnet_fast.load(random_alnet(SMALL_RGB, seed=3), device="cpu")


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def as_hw(x: torch.Tensor, t) -> torch.Tensor:
    """``apply`` on an [H, W, C] array viewed as [C, H, W]."""
    return apply(x.permute(2, 0, 1), t).permute(1, 2, 0)


@pytest.mark.parametrize("square", [True, False])
def test_group_is_closed_and_inverses_undo(square):
    group = transforms(square)
    assert len(group) == (8 if square else 4) and group[0] == (False, False, False)
    x = torch.arange(2 * 3 * 4 * 4 if square else 2 * 3 * 4 * 5, dtype=torch.float32)
    x = x.reshape(2, 3, 4, 4) if square else x.reshape(2, 3, 4, 5)
    images = [apply(x, t) for t in group]
    assert len({tuple(im.flatten().tolist()) for im in images}) == len(group)  # all distinct
    for t, im in zip(group, images):
        assert torch.equal(invert(im, t), x)
    for a, b in itertools.product(group, repeat=2):  # closure: a composed with b is a member
        composed = apply(apply(x, a), b)
        assert any(torch.equal(composed, im) for im in images)


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)])
def test_tta_is_the_mean_of_manually_flipped_predictions(seg, shape):
    img = image(*shape)
    group = transforms(shape[0] == shape[1])
    manual = []
    for t in group:
        flipped = np.ascontiguousarray(as_hw(torch.from_numpy(img), t).numpy())
        manual.append(invert(torch.from_numpy(seg.predict(flipped)), t))
    expected = torch.stack(manual).mean(0).numpy()
    got = seg.predict(img, tta=True)
    assert got.shape == shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    assert np.abs(got - seg.predict(img)).max() > 1e-3  # and it is not the plain prediction


def test_tta_is_invariant_to_flipping_the_input(seg):
    img = torch.from_numpy(image(64, 64, seed=1))
    base = torch.from_numpy(seg.predict(img.numpy(), tta=True))
    for t in transforms(square=True):
        moved = seg.predict(np.ascontiguousarray(as_hw(img, t).numpy()), tta=True)
        np.testing.assert_allclose(moved, apply(base, t).numpy(), rtol=0, atol=ATOL)


def test_tta_runs_the_group_as_one_batch():
    seg = alnet_fast.load(random_alnet(SMALL_RGB, seed=3), device="cpu", batch_size=2)
    sizes = []
    original = seg.logits
    seg.logits = lambda x: sizes.append(x.shape[0]) or original(x)  # count the network calls and batch sizes
    seg.predict([image(32, 32, seed=s) for s in range(3)], tta=True)
    assert sizes == [16, 8]  # two chunks (batch_size 2): 8 copies of each image in one call per chunk


def test_tta_multiclass_is_a_distribution():
    seg = alnet_fast.load(random_alnet(SMALL_3CLASS, seed=4), device="cpu")
    probs = seg.predict(np.random.default_rng(0).integers(0, 4000, (40, 40)).astype(np.uint16), tta=True)
    assert probs.shape == (3, 40, 40)
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=0, atol=1e-5)  # fp32 mean of 8 softmaxes
    assert seg.segment(np.zeros((40, 40), np.uint16), tta=True).shape == (40, 40)


def test_tta_refuses_tiles(seg):
    with pytest.raises(ValueError, match="tile"):
        seg.predict(image(64, 64), tile=32, tta=True)


def test_cli_tta(tmp_path):
    checkpoint = tmp_path / "m.safetensors"
    alnet_fast.save(random_alnet(SMALL_RGB, seed=3), checkpoint)
    png = tmp_path / "in" / "a.png"
    png.parent.mkdir()
    Image.fromarray((image(40, 40) * 255).astype(np.uint8)).save(png)
    out = tmp_path / "out"
    assert alnet_fast.cli.main(["segment", str(png), "-o", str(out), "--model", str(checkpoint), "--tta",
                                "--probs", "-q"]) == 0
    import tifffile

    probs = tifffile.imread(out / "a_probs.tif")
    expected = alnet_fast.load(checkpoint, device="cpu").predict(np.asarray(Image.open(png)), tta=True)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=ATOL)
    assert alnet_fast.cli.main(["segment", str(png), "-o", str(out), "--model", str(checkpoint), "--tta",
                                "--tile", "64", "-q"]) == 2

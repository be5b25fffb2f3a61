"""Tiled inference (alnet_fast.tiling): the tile grid, the blend, and agreement with whole-image inference."""

import numpy as np
import pytest
import torch

import alnet_fast
from alnet_fast.inputs import prepare_image
from alnet_fast.tiling import overlap_pixels, ramp, tile_origins, tiled_probs

SMALL = alnet_fast.ALNetConfig(in_channels=1, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                               context_channels=16, decoder_channels=16)


def blobs(h: int, w: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy uint8 image of bright disks [H, W] and its ground-truth mask (bool [H, W])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), bool)
    for _ in range(count):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(6, 20)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    image = (mask * 150 + rng.normal(50, 20, (h, w))).clip(0, 255).astype(np.uint8)
    return image, mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


@pytest.fixture(scope="module")
def trained():
    """A small AL-Net trained for 20 steps on disks: its logits are driven by the image (a random net's are
    nearly flat, so its masks flip on any perturbation), which is what tiling must preserve."""
    torch.manual_seed(0)
    net = alnet_fast.ALNet(SMALL)
    data = [blobs(64, 64, 3, seed) for seed in range(8)]
    x = torch.stack([prepare_image(image, SMALL) for image, _ in data])
    y = torch.tensor(np.stack([mask for _, mask in data]))[:, None].float()
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(20):
        batch = torch.randint(0, len(data), (4,))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return alnet_fast.load(net.eval(), backend="torch", device="cpu", batch_size=4)


def test_tile_origins_are_aligned_and_cover_the_padded_image():
    for size in (1, 31, 32, 100, 511, 512, 513, 2166, 3188):
        for tile, step in ((64, 32), (128, 96), (512, 384)):
            origins = tile_origins(size, tile, step)
            padded = -(-size // 32) * 32
            assert all(o % 32 == 0 for o in origins)
            assert origins[0] == 0 and origins == sorted(set(origins))
            assert min(origins[-1] + tile, padded) == padded  # the last tile reaches the padded end
            assert all(b - a <= step for a, b in zip(origins, origins[1:]))  # no gap, overlap >= tile - step
            assert all(o + tile <= padded for o in origins) or origins == [0]


def test_ramp_weights_are_positive_symmetric_and_flat_in_the_middle():
    w = ramp(128, 32)
    assert w.shape == (128,) and bool((w > 0).all()) and float(w.max()) == 1.0
    assert torch.equal(w, w.flip(0))
    assert bool((w[32:96] == 1).all()) and float(w[0]) == pytest.approx(0.5 / 32)
    assert torch.equal(ramp(64, 0), torch.ones(64))


def test_overlap_is_rounded_to_multiples_of_32_and_validated():
    assert overlap_pixels(512, 0.25) == 128
    assert overlap_pixels(512, 0.0) == 0
    assert overlap_pixels(64, 0.9) == 32  # capped: the step stays >= 32
    with pytest.raises(ValueError, match="overlap"):
        overlap_pixels(512, 1.0)


@pytest.mark.parametrize("tile", [48, 100, 0, 32])
def test_bad_tile_sizes_are_refused(trained, tile):
    with pytest.raises(ValueError, match="tile must be"):
        trained.predict(np.zeros((80, 80), np.uint8), tile=tile)


def test_image_fitting_one_tile_is_bit_identical_to_whole_image(trained):
    image, _ = blobs(100, 90, 4, seed=1)  # padded to 128 x 96: one 128 tile
    assert np.array_equal(trained.predict(image, tile=128), trained.predict(image))


def test_tiled_masks_match_whole_image_masks(trained):
    """Not bit-identical (the Lite R-ASPP gate uses each tile's global mean; tile borders see zero padding),
    but the masks agree: Dice >= 0.99 for tiles of 128 and 256 on a 300 x 420 image (measured 0.996 and
    0.999); smaller tiles than the network's receptive field agree less (64: about 0.95), hence the docs'
    advice of tiles of 256 to 512."""
    image, truth = blobs(300, 420, 40, seed=99)
    whole = trained.segment(image)
    assert dice(whole.astype(bool), truth) > 0.8  # the model really segments the disks
    for tile in (128, 256):
        tiled = (trained.predict(image, tile=tile, overlap=0.25) > 0.5).astype(np.uint8)
        assert tiled.shape == whole.shape
        assert dice(tiled.astype(bool), whole.astype(bool)) >= 0.99, tile


def test_network_sees_bounded_batches_of_tiles(trained, monkeypatch):
    """Peak activation memory is bounded: each forward pass gets at most batch_size tiles of tile x tile."""
    shapes = []
    real = trained.logits

    def recording(x):
        shapes.append(tuple(x.shape))
        return real(x)

    monkeypatch.setattr(trained, "logits", recording)
    x = prepare_image(blobs(300, 420, 10, seed=2)[0], SMALL)
    probs = tiled_probs(trained, x, tile=128, overlap=0.25)
    assert probs.shape == (300, 420)
    assert len(shapes) == 4  # 3 x 5 = 15 tiles (rows 0, 96, 192; columns 0, 96, 192, 288, 320), 4 at a time
    assert sum(n for n, *_ in shapes) == 15
    assert all(n <= 4 and (h, w) == (128, 128) for n, _, h, w in shapes)


def test_tiled_predict_accepts_batches_like_whole_image_predict(trained):
    images = [blobs(200, 150, 5, seed=s)[0] for s in range(2)]
    out = trained.predict(images, tile=64)
    assert isinstance(out, list) and [p.shape for p in out] == [(200, 150)] * 2
    assert all(p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1 for p in out)
    stacked = trained.predict(torch.rand(2, 1, 70, 70), tile=64)
    assert stacked.shape == (2, 70, 70)

"""The robustness report's transforms: what each does to an image and its mask."""

import numpy as np
import pytest

from alnet_fast.train.robustness import gamma, noise, rescale, tiles, transform_rows


def test_gamma_keeps_the_range_and_bends_the_middle():
    image = np.linspace(100, 1100, 101, dtype=np.float32).reshape(1, 101)
    mask = image > 600
    out, m = gamma(0.5)(image, mask)
    assert m is mask and out.min() == pytest.approx(100) and out.max() == pytest.approx(1100, rel=1e-6)
    assert out[0, 25] == pytest.approx(100 + 1000 * 0.25 ** 0.5, rel=1e-5)  # fp32: a few ulp of 1100


def test_noise_is_seeded_and_scaled_to_the_range():
    image = np.tile(np.array([0, 1000], np.uint16), 10000).reshape(100, 200)
    a, _ = noise(0.1)(image, image > 0)
    b, _ = noise(0.1)(image, image > 0)
    assert np.array_equal(a, b)  # the same noise every run: before/after tables compare like with like
    assert abs(float((a - image).std()) - 100) < 3  # 20000 samples of std 0.1 x 1000: within 3%


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_rescale_moves_the_mask_with_the_image(factor):
    yy, xx = np.mgrid[:64, :64] + 0.5
    mask = (yy - 32) ** 2 + (xx - 32) ** 2 < 16 ** 2
    image = mask.astype(np.uint8) * 200
    out, m = rescale(factor)(image, mask)
    assert out.shape == m.shape == (round(64 * factor),) * 2
    radius = np.sqrt(m.sum() / np.pi)
    assert abs(radius - 16 * factor) < 1.0  # the disk scaled by factor, to a pixel
    assert ((out > 100) == m).mean() > 0.995  # same boundary in image and mask


def test_tiles_cover_the_image_once():
    image = np.arange(70 * 50).reshape(70, 50)
    covered = np.zeros_like(image)
    for r, c, part in tiles(image, 32):
        assert np.array_equal(part, image[r:r + part.shape[0], c:c + part.shape[1]])
        covered[r:r + part.shape[0], c:c + part.shape[1]] += 1
    assert (covered == 1).all()


def test_identity_row_is_the_sample():
    image, mask = np.ones((4, 4)), np.zeros((4, 4), bool)
    out = transform_rows()["identity"](image, mask)
    assert out[0] is image and out[1] is mask

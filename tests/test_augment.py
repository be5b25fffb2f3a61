"""Augmentation: determinism per seed, image/mask consistency under zoom and context cuts, value ranges,
probability 0 disables each transform, and the brain's multi-plane split never trains on held-out voxels."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from alnet_fast.commands.train import parse_augmentation
from alnet_fast.train.augment import (Augmentation, augment, augment_intensity, augmented_crop, cut_context,
                                      gaussian_blur, resize_pair, scaled_crop)
from alnet_fast.train.datasets import PLANES, brain_slice_split, held_out_slices, split_brain, training_set_metadata

INTENSITY = ("gamma", "contrast", "brightness", "noise", "blur")
ALL = INTENSITY + ("scale", "context")


def disk(size: int, radius: float) -> torch.Tensor:
    """[1, size, size] float mask of a centred disk."""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    return (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < radius ** 2).float()[None]


def only(name: str, **kwargs) -> Augmentation:
    """Every transform off but ``name`` (probability 1), no flips or shifts."""
    return Augmentation.geometric(hflip=False, vflip=False, diagonal=False, max_shift=0,
                                  **{f"{name}_p": 1.0}, **kwargs)


def test_same_seed_same_crops_and_other_seed_differs():
    image, mask = torch.rand(1, 96, 80), (torch.rand(1, 96, 80) > 0.5).float()
    runs = [[augmented_crop(image, mask, 48, gen) for _ in range(10)]
            for gen in (torch.Generator().manual_seed(5), torch.Generator().manual_seed(5),
                        torch.Generator().manual_seed(6))]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a[0], c[0]) for a, c in zip(runs[0], runs[2]))


@pytest.mark.parametrize("name", ALL)
def test_probability_zero_disables_each_transform(name):
    image, mask = torch.rand(1, 40, 40), (torch.rand(1, 40, 40) > 0.5).float()
    off = Augmentation.geometric(hflip=False, vflip=False, diagonal=False, max_shift=0)
    on = only(name)
    gen = torch.Generator().manual_seed(0)
    x, m = augmented_crop(image, mask, 40, gen, off)
    assert torch.equal(x, image) and torch.equal(m, mask)  # nothing drawn: the crop is the image itself
    x, m = augmented_crop(image, mask, 40, torch.Generator().manual_seed(0), on)
    assert not torch.equal(x, image)  # and with probability 1 the transform does change it


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_keeps_mask_and_value_range(name):
    image = torch.rand(1, 64, 64) * 3 - 1  # values in about [-1, 2]
    mask = (image > 0.5).float()
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        x, m = augment(image, mask, gen, only(name))
        assert torch.equal(m, mask)  # intensity transforms never touch the mask
        # clipped to the input's own range (fp32 rounding of the [0, 1] round trip: a few ulp)
        assert x.min() >= image.min() - 1e-6 and x.max() <= image.max() + 1e-6
        assert torch.isfinite(x).all()


def test_gamma_is_a_monotone_power_of_the_unit_range():
    image = torch.linspace(0, 1, 101).reshape(1, 1, 101)
    x = augment_intensity(image, torch.Generator().manual_seed(0), only("gamma", gamma_range=(2.0, 2.0)))
    torch.testing.assert_close(x, image ** 2, rtol=0, atol=1e-6)  # fp32 rounding of u ** 2


def test_noise_level_matches_its_range():
    image = torch.cat([torch.zeros(1, 1, 1), torch.full((1, 1, 20000), 0.5), torch.ones(1, 1, 1)], dim=-1)
    x = augment_intensity(image, torch.Generator().manual_seed(0),
                          only("noise", noise_range=(0.1, 0.1), noise_rescale=None))
    # 20000 samples of N(0, 0.1^2) (few clipped at 0.5 +- 0.5): the sample std is within 3% of 0.1
    assert abs(float((x - image).std()) - 0.1) < 0.003


def test_noise_rescale_shows_the_network_what_percentile_scaling_makes_of_a_noisy_image():
    image = torch.cat([torch.zeros(1, 1, 20000), torch.ones(1, 1, 20000)], dim=-1)  # background 0, foreground 1
    noisy = only("noise", noise_range=(0.1, 0.1))
    assert noisy.noise_rescale == (1.0, 99.8)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    rescaled, clipped = augment_intensity(image, gen(), noisy), augment_intensity(
        image, gen(), only("noise", noise_range=(0.1, 0.1), noise_rescale=None))
    # Percentile scaling of the noisy image maps its 1st percentile (background - 2.05 sd = -0.205) to 0 and
    # its 99.8th (foreground + 2.65 sd = 1.265) to 1: the background mean rises to 0.205 / 1.47 = 0.14 and
    # its noise stays two-sided (about 2% clipped). Clipped only: half the background sits at 0 and its mean
    # is E[max(0, N(0, 0.1^2))] = 0.04.
    background = rescaled[..., :20000]
    assert 0.12 < float(background.mean()) < 0.16 and float((background == 0).float().mean()) < 0.03
    assert abs(float(clipped[..., :20000].mean()) - 0.04) < 0.005
    assert abs(float((clipped[..., :20000] == 0).float().mean()) - 0.5) < 0.02


@pytest.mark.parametrize("scaling, rescale", [("percentile", (2.0, 98.0)), ("minmax", (0.0, 100.0)), ("dtype", None)])
def test_trainer_matches_noise_rescale_to_the_model_input_scaling(scaling, rescale):
    from alnet_fast.config import ALNetConfig
    from alnet_fast.train.trainer import TrainSettings, matched_noise_rescale

    config = ALNetConfig(in_channels=1, scaling=scaling, percentiles=(2.0, 98.0))
    settings = matched_noise_rescale(TrainSettings(), config)
    assert settings.augmentation.noise_rescale == rescale
    assert dataclasses.replace(settings.augmentation, noise_rescale=(1.0, 99.8)) == Augmentation()


def test_blur_preserves_mean_and_smooths():
    x = torch.zeros(1, 33, 33)
    x[0, 16, 16] = 1.0
    y = gaussian_blur(x, 1.5)
    assert abs(float(y.sum()) - 1.0) < 1e-5 and float(y.max()) < 0.1  # mass kept (fp32 sums), peak spread
    assert torch.equal(gaussian_blur(x, 0.0), x)


@pytest.mark.parametrize("zoom", [0.5, 2.0])
def test_zoom_resamples_a_disk_into_a_disk_of_the_expected_radius(zoom):
    size, radius = 128, 20.0
    window = round(size / zoom)  # the source window a zoom of ``zoom`` resizes to size x size
    mask = disk(window, radius / zoom)  # exactly one window fits: the disk ends up centred
    image = mask * 0.8 + 0.1
    x, m = scaled_crop(image, mask, size, zoom, torch.Generator().manual_seed(0))
    assert x.shape == m.shape == (1, size, size)
    expected = disk(size, radius)
    area = float(m.sum())
    assert abs(area - math.pi * radius ** 2) / (math.pi * radius ** 2) < 0.05  # boundary pixels: within 5%
    inter = float((m * expected).sum())
    assert 2 * inter / (area + float(expected.sum())) > 0.97  # the same disk, in place
    # image and mask boundaries moved together: the same interpolation, so x > 0.5 <=> resized mask > 0.5 up to
    # fp32 rounding of 0.1 + 0.8 r at r = 1/2 exactly (at most a few pixels)
    assert int((m != (x > 0.5).float()).sum()) <= 4


def test_resize_pair_thresholds_the_mask():
    image, mask = torch.rand(2, 10, 14), (torch.rand(1, 10, 14) > 0.5).float()
    x, m = resize_pair(image, mask, (20, 28))
    assert x.shape == (2, 20, 28) and m.shape == (1, 20, 28) and set(m.unique().tolist()) <= {0.0, 1.0}


def test_context_cut_blanks_outside_the_window_in_both():
    image, mask = torch.rand(1, 16, 16) + 1, torch.ones(1, 16, 16)
    x, m = cut_context(image, mask, 4, 2, 6, 9)
    inside = torch.zeros(1, 16, 16, dtype=torch.bool)
    inside[:, 4:10, 2:11] = True
    assert torch.equal(x[inside], image[inside]) and (x[~inside] == 0).all()
    assert torch.equal(m, inside.float())


def test_context_cut_drawn_keeps_image_mask_agreement():
    image = torch.rand(1, 64, 64) + 0.5
    mask = (image > 1.0).float()
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        x, m = augment(image, mask, gen, only("context"))
        kept = x != 0
        assert torch.equal(m, ((image > 1.0) & kept).float())
        assert 0.35 ** 2 * 64 * 64 - 64 * 2 <= int(kept.sum()) <= 0.8 ** 2 * 64 * 64 + 64 * 2


@pytest.mark.parametrize("bad", [{"gamma_p": 1.5}, {"noise_p": -0.1}, {"scale_range": (2.0, 1.0)},
                                 {"gamma_range": (0.0, 1.0)}, {"context_range": (0.5, 1.5)},
                                 {"noise_range": (-0.1, 0.1)}])
def test_invalid_settings_are_refused(bad):
    with pytest.raises(ValueError):
        Augmentation(**bad)


def test_cli_augment_items():
    aug = parse_augmentation(["gamma_p=0.5", "noise_range=0,0.2"], max_shift=8)
    assert aug.gamma_p == 0.5 and aug.noise_range == (0.0, 0.2) and aug.max_shift == 8
    for bad in (["gamma=0.5"], ["gamma_p"], ["noise_range=0.1"], ["gamma_p=x"], ["hflip=0"]):
        with pytest.raises(ValueError):
            parse_augmentation(bad, max_shift=8)


def test_multi_plane_brain_split_never_trains_on_held_out_voxels():
    rng = np.random.default_rng(0)
    shape = (30, 34, 60)
    brain = np.zeros(shape, bool)
    brain[5:25, 4:30, 6:54] = True
    volume = (np.arange(np.prod(shape)).reshape(shape) + 1).astype(np.int64)  # every voxel its own value
    volume[~brain] = rng.integers(1, 10, size=int((~brain).sum()))
    splits = split_brain(volume, brain, planes=tuple(PLANES), empty=True)
    axial = brain_slice_split(brain, PLANES["axial"])
    held_out = {int(v) for z in axial["val"] + axial["test"] for v in volume[:, :, z][brain[:, :, z]]}
    trained = {int(v) for image, _ in splits["train"] for v in image.ravel()}
    assert not held_out & trained  # no held-out brain voxel value appears in any training slice
    plain = split_brain(volume, brain)
    for split in ("val", "test"):  # validation and test stay the axial split
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(splits[split], plain[split]))
    assert len(splits["train"]) > len(plain["train"])
    for plane in ("sagittal", "coronal"):
        test = held_out_slices(volume, brain, plane)
        assert test and all(m.any() for _, m in test)
        assert not any(image.shape == (shape[0], shape[1]) for image, _ in test)  # not axial slices
    with pytest.raises(ValueError, match="planes"):
        split_brain(volume, brain, planes=("sagittal",))


def test_axial_repeat_lists_the_axial_training_slices_k_times_and_is_recorded():
    shape = (20, 24, 40)
    brain = np.zeros(shape, bool)
    brain[4:16, 4:20, 4:36] = True
    volume = np.arange(np.prod(shape)).reshape(shape).astype(np.int64)
    once = split_brain(volume, brain, planes=tuple(PLANES), empty=True)
    thrice = split_brain(volume, brain, planes=tuple(PLANES), empty=True, axial_repeat=3)
    n_axial = len(brain_slice_split(brain, PLANES["axial"])["train"])
    assert len(thrice["train"]) == len(once["train"]) + 2 * n_axial
    axial_shape = (shape[0], shape[1])
    count = sum(image.shape == axial_shape and mask.any() for image, mask in thrice["train"])
    assert count == 3 * n_axial
    for split in ("val", "test"):  # held-out splits are never repeated
        assert len(thrice[split]) == len(once[split])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="axial_repeat"):
            split_brain(volume, brain, axial_repeat=bad)
    assert training_set_metadata({"planes": ("axial", "sagittal"), "empty": True, "axial_repeat": 3}) == {
        "planes": "axial,sagittal", "empty_slices": "True", "axial_repeat": "3"}
    assert training_set_metadata({}) == {}

"""The bundled models and sample: offline loading, size, folded vs multi-branch parity, held-out Dice.

The nuclei sample (alnet_fast/data/nuclei.tif + nuclei_mask.png) is the test quadrant of the stardist 0.9.2
img2d.tif / mask2d.tif pair (CC0): the bottom-right 256 x 256, never used in training or validation.
The brain slices (tests/data/brain_test_slices.npz) come from the held-out slice blocks of mricron-data.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import alnet_fast
from alnet_fast.checkpoint import read_checkpoint, resolve_path
from alnet_fast.io import read_image
from alnet_fast.train.datasets import DATASET_CONFIGS
from alnet_fast.train import bundled_sample, image_metrics, summarise

NUCLEI_TARGET_DICE = 0.92  # the floor for held-out nuclei foreground Dice
BRAIN_TARGET_DICE = 0.96  # the floor for held-out brain mask Dice
# SHA-256 of the raw pixels of the bottom-right quadrant of img2d.tif (uint16) and of its mask > 0 (uint8 0/1),
# computed from the checksummed files of scripts/fetch_data.py: the sample really is the held-out quadrant.
SAMPLE_PIXELS_SHA256 = "f853af5288e3b888e368bbe17b0692f31ecf7f3f683596688d44ae95a7d8f1d8"
SAMPLE_MASK_SHA256 = "7d6a946512a26d68a84cc24f55b9374df2ccfbe4c42707f272ba6f911e06b65b"


@pytest.fixture(scope="module")
def sample():
    image_path, mask_path = bundled_sample("nuclei")
    return image_path, read_image(image_path), read_image(mask_path) > 0


def test_sample_is_the_held_out_quadrant(sample):
    _, image, mask = sample
    assert image.shape == (256, 256) and image.dtype == np.uint16
    assert hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() == SAMPLE_PIXELS_SHA256
    assert hashlib.sha256(mask.astype(np.uint8).tobytes()).hexdigest() == SAMPLE_MASK_SHA256


@pytest.mark.parametrize("name, target", [("nuclei", NUCLEI_TARGET_DICE), ("brain", BRAIN_TARGET_DICE)])
def test_models_are_bundled_small_and_documented(name, target):
    assert name in alnet_fast.bundled_models()
    assert resolve_path(name).stat().st_size <= 8 * 1024 * 1024
    ckpt = read_checkpoint(name)
    assert ckpt.kind == "multibranch" and ckpt.config == DATASET_CONFIGS[name]
    assert ckpt.config.plane == {"nuclei": None, "brain": "axial"}[name]  # volumes are sliced in this plane
    assert all(v.dtype == torch.float16 for v in ckpt.state_dict.values() if v.is_floating_point())
    assert float(ckpt.metadata["test_dice"]) >= target


def test_folded_matches_multibranch_on_the_sample(sample):
    image_path = sample[0]
    folded = alnet_fast.load("nuclei", backend="torch", device="cpu")
    multibranch = alnet_fast.load("nuclei", fold=False, device="cpu")
    p_folded, p_multi = folded.predict(image_path), multibranch.predict(image_path)
    # Folding is exact algebra done in float64; what remains is float32 summation order over ~40 convs.
    # 1e-3 on probabilities is loose for that and far below anything that changes a mask.
    np.testing.assert_allclose(p_folded, p_multi, rtol=0, atol=1e-3)
    assert image_metrics(p_folded > 0.5, p_multi > 0.5)["dice"] >= 0.999


def test_held_out_dice_recomputed(sample):
    image_path, _, mask = sample
    pred = alnet_fast.load("nuclei", backend="torch", device="cpu").segment(image_path)
    metrics = image_metrics(pred, mask)
    assert metrics["dice"] >= NUCLEI_TARGET_DICE, metrics
    # The stored figure is the one this test recomputes (same weights, same path), to 4 decimals.
    assert metrics["dice"] == pytest.approx(float(read_checkpoint("nuclei").metadata["test_dice"]), abs=1e-4)

@pytest.mark.parametrize("row, floor", [("gamma 0.7", 0.90), ("scale 2.0", 0.88)])
def test_bundled_nuclei_holds_under_gamma_and_magnification(sample, row, floor):
    # The targets on the held-out quadrant (docs/training.md, robustness table: measured 0.9270 and
    # 0.9271); the retrained model was trained with gamma and zoom augmentation.
    from alnet_fast.train.robustness import transform_rows

    _, image, mask = sample
    image, mask = transform_rows()[row](image, mask)
    pred = alnet_fast.load("nuclei", backend="torch", device="cpu").segment(image)
    assert image_metrics(pred, mask)["dice"] >= floor


def test_bundled_nuclei_records_its_augmentation():
    augmentation = json.loads(read_checkpoint("nuclei").metadata["augmentation"])
    assert augmentation["gamma_p"] > 0 and augmentation["noise_p"] > 0 and augmentation["scale_p"] > 0


# Every 4th held-out slice (test blocks of the brain split) of mricron-data ch2.nii.gz / ch2bet.nii.gz (BSD-3),
# written by scripts/train_models.py brain.
BRAIN_SLICES = Path(__file__).parent / "data" / "brain_test_slices.npz"


@pytest.fixture(scope="module")
def brain_slices():
    with np.load(BRAIN_SLICES) as f:
        images, shape = f["images"], tuple(f["mask_shape"])
        masks = np.unpackbits(f["masks"])[: int(np.prod(shape))].reshape(shape).astype(bool)
    assert images.shape == masks.shape and images.dtype == np.uint8 and len(images) == 8
    return list(images), list(masks)


def test_brain_held_out_dice_recomputed(brain_slices):
    images, masks = brain_slices
    summary = summarise(alnet_fast.load("brain", backend="torch", device="cpu").segment(images), masks)
    # The brain mask is a volume: its Dice counts all held-out voxels together (measured 0.978 on these 8
    # slices, 0.9765 on all 32 held-out slices, the figure in the metadata).
    assert summary.pooled["dice"] >= BRAIN_TARGET_DICE, summary.pooled
    # Per slice the small lower-brain slices score lower (all 32 held-out slices: 0.958 ± 0.036); this
    # floor only guards against a slice-level collapse the pooled figure could hide.
    assert min(row["dice"] for row in summary.per_image) >= 0.85, summary.per_image


def test_brain_folded_matches_multibranch(brain_slices):
    images = brain_slices[0][:2]
    folded = np.stack(alnet_fast.load("brain", backend="torch", device="cpu").predict(images))
    multibranch = np.stack(alnet_fast.load("brain", fold=False, device="cpu").predict(images))
    np.testing.assert_allclose(folded, multibranch, rtol=0, atol=1e-3)  # same tolerance argument as for nuclei

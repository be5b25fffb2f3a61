"""Segmenter: every input type, odd sizes, batches, bad inputs, backend selection."""

import numpy as np
import pytest
import torch
from PIL import Image

import alnet_fast
from alnet_fast import ALNetConfig, BackendUnavailable, ImageReadError
from alnet_fast.inputs import prepare_image, quantiles
from alnet_fast.testing import dice, random_alnet

SMALL_RGB = ALNetConfig(in_channels=3, widths=(8, 8, 16, 16, 32), depths=(1, 1, 2, 2, 1), context_channels=16,
                        decoder_channels=16, scaling="dtype")
SMALL_GRAY = ALNetConfig(**{**SMALL_RGB.to_dict(), "in_channels": 1, "num_classes": 3})


@pytest.fixture(scope="module")
def seg():
    return alnet_fast.load(random_alnet(SMALL_RGB, seed=11), device="cpu")


@pytest.fixture(scope="module")
def reference():
    return alnet_fast.load(random_alnet(SMALL_RGB, seed=11), fold=False, device="cpu")


def rgb_image(h=45, w=61, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_folded_segmenter_agrees_with_multibranch_reference(seg, reference):
    img = rgb_image()
    probs, ref = seg.predict(img), reference.predict(img)
    assert probs.shape == img.shape[:2] and probs.dtype == np.float32
    assert np.abs(probs - ref).max() < 1e-5  # probabilities: fp32 folding error, sigmoid contracts it
    assert dice(seg.segment(img), reference.segment(img)) >= 0.99


@pytest.mark.parametrize("h,w", [(1, 1), (7, 9), (32, 32), (97, 131), (200, 33)])
def test_any_size_gives_input_size(seg, h, w):
    mask = seg.segment(rgb_image(h, w))
    assert mask.shape == (h, w) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


def test_all_input_types_agree(seg, tmp_path):
    img = rgb_image()
    expected = seg.predict(img)
    Image.fromarray(img).save(tmp_path / "a.png")
    tensor_chw = torch.from_numpy(img).permute(2, 0, 1)
    variants = {
        "path": str(tmp_path / "a.png"),
        "pathlib": tmp_path / "a.png",
        "pil": Image.fromarray(img),
        "tensor_chw": tensor_chw,
        "float_tensor": tensor_chw.float() / 255,
        "float_array": img.astype(np.float64) / 255,
    }
    for name, value in variants.items():
        assert np.allclose(seg.predict(value), expected, atol=1e-6), name
    batch = seg.predict(tensor_chw[None].repeat(3, 1, 1, 1))
    assert batch.shape == (3, *img.shape[:2]) and np.allclose(batch, expected[None], atol=1e-6)


def test_tiff_16bit_and_jpeg(tmp_path):
    import tifffile

    seg16 = alnet_fast.load(random_alnet(ALNetConfig(**{**SMALL_RGB.to_dict(), "in_channels": 1}), seed=2),
                            device="cpu")
    img16 = np.random.default_rng(0).integers(0, 65536, (40, 50), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", img16)
    assert np.allclose(seg16.predict(tmp_path / "a.tif"), seg16.predict(img16))
    assert np.allclose(seg16.predict(img16), seg16.predict(img16.astype(np.float64) / 65535), atol=1e-6)
    Image.fromarray(rgb_image()).save(tmp_path / "a.jpg")
    assert seg16.segment(tmp_path / "a.jpg").shape == (45, 61)  # RGB -> gray for a 1-channel model


def test_list_batches_mixed_sizes_match_single_calls(seg):
    images = [rgb_image(40, 50, 1), rgb_image(33, 65, 2), rgb_image(40, 50, 3), rgb_image(40, 50, 4),
              rgb_image(40, 50, 5), rgb_image(40, 50, 6)]
    batched = seg.predict(images)
    assert isinstance(batched, list) and len(batched) == len(images)
    for image, probs in zip(images, batched):
        # batching changes only which conv algorithm runs: fp32 accumulation-order tolerance
        assert np.allclose(probs, seg.predict(image), atol=1e-5)
    masks = seg.segment(images)
    assert [m.shape for m in masks] == [i.shape[:2] for i in images]


def test_gray_rgb_adaptation_and_multiclass():
    seg = alnet_fast.load(random_alnet(SMALL_GRAY, seed=4), device="cpu")
    gray = np.random.default_rng(0).integers(0, 256, (30, 40), dtype=np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    probs = seg.predict(rgb)
    assert probs.shape == (3, 30, 40) and np.allclose(probs.sum(0), 1, atol=1e-5)
    assert np.allclose(probs, seg.predict(gray), atol=1e-5)  # equal channels -> same luminance
    mask = seg.segment(gray)
    assert mask.shape == (30, 40) and np.array_equal(mask, probs.argmax(0))
    rgba = np.concatenate([rgb, np.full((30, 40, 1), 255, np.uint8)], axis=2)
    assert np.allclose(seg.predict(rgba), probs, atol=1e-5)


@pytest.mark.parametrize("bad,error,match", [
    (np.zeros((0, 10), np.uint8), ValueError, "empty"),
    (np.zeros((4, 4, 4, 4), np.uint8), ValueError, "\\[H, W\\]"),
    (np.zeros((10, 10, 7), np.uint8), ValueError, "channels"),
    (torch.zeros(5, 10, 10), ValueError, "5 channels; the model expects 3"),
    (np.full((10, 10), np.nan, np.float32), ValueError, "NaN"),
    (np.full((10, 10), np.inf, np.float32), ValueError, "NaN or Inf"),
    (np.zeros((10, 10), np.complex64), TypeError, "dtype"),
    (np.array([["a"]]), TypeError, "dtype"),
    (torch.zeros(1, 1, 1, 1, 10), ValueError, "shape"),
    ({"not": "an image"}, TypeError, "unsupported image type"),
    ([], ValueError, "empty list"),
    ("/nonexistent/image.png", FileNotFoundError, "not found"),
])
def test_bad_inputs_raise_typed_errors(seg, bad, error, match):
    with pytest.raises(error, match=match):
        seg.predict(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_one_non_finite_pixel_among_finite_ones_is_refused(seg, value, as_tensor):
    image = np.linspace(0, 1, 64 * 64, dtype=np.float64).reshape(64, 64)
    image[17, 40] = value
    with pytest.raises(ValueError, match="NaN or Inf"):
        seg.predict(torch.from_numpy(image) if as_tensor else image)


@pytest.mark.parametrize("n", [1, 2, 7, 1001, 512 * 512])
def test_quantiles_equal_torch_quantile_bit_for_bit(n):
    """The preprocessing's percentile bounds come from selection, not torch's sort: same float64 values."""
    gen = torch.Generator().manual_seed(n)
    for values in (torch.randn(n, generator=gen), torch.randint(0, 40, (n,), generator=gen).float(),
                   torch.full((n,), 2.5)):
        for q in ([0.01, 0.998], [0.0, 1.0], [0.5], [0.333, 0.25, 0.999]):
            q = torch.tensor(q, dtype=torch.float64)
            assert torch.equal(quantiles(values.reshape(1, 1, -1), q), torch.quantile(values.double(), q))


def test_non_image_and_corrupt_files(seg, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(ImageReadError, match="notes.png"):
        seg.segment(text)
    png = tmp_path / "cut.png"
    Image.fromarray(rgb_image()).save(png)
    png.write_bytes(png.read_bytes()[:200])
    with pytest.raises(ImageReadError):
        seg.segment(png)
    bad_tiff = tmp_path / "bad.tif"
    bad_tiff.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageReadError):
        seg.segment(bad_tiff)
    with pytest.raises(ImageReadError, match="not a file"):
        seg.segment(tmp_path)


def test_backend_selection_errors_and_repr(seg):
    model = random_alnet(SMALL_RGB)
    with pytest.raises(BackendUnavailable, match="unknown backend 'cudnn'"):
        alnet_fast.load(model, backend="cudnn", device="cpu")
    with pytest.raises(BackendUnavailable, match="torch backend only"):
        alnet_fast.load(model, backend="triton", fold=False, device="cpu")
    assert "folded" in repr(seg) and "backend=" in repr(seg) and seg.backend in alnet_fast.backend_names()


def test_dtype_by_name_or_dtype_and_bad_dtypes_are_typed_errors():
    model = random_alnet(SMALL_RGB)
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("auto", torch.float32)):
        assert alnet_fast.load(model, backend="torch", device="cpu", dtype=name).dtype == dtype
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        alnet_fast.load(model, backend="torch", device="cpu", dtype="fp8")
    with pytest.raises(TypeError, match="dtype must be"):
        alnet_fast.load(model, backend="torch", device="cpu", dtype=32)


def test_bfloat16_torch_backend_agrees_by_dice(reference):
    seg = alnet_fast.load(random_alnet(SMALL_RGB, seed=11), backend="torch", device="cpu", dtype=torch.bfloat16)
    images = [rgb_image(64, 64, s) for s in range(4)]
    for image in images:
        # bf16 keeps 8 mantissa bits: compare masks, not logits
        assert dice(seg.segment(image), reference.segment(image)) >= 0.9


def test_normalisation_modes():
    img = np.array([[0, 100], [200, 250]], np.uint8)
    for scaling, expected in [("dtype", img / 255), ("minmax", img / 250)]:
        cfg = ALNetConfig(in_channels=1, scaling=scaling, mean=(0.0,), std=(1.0,))
        assert np.allclose(prepare_image(img, cfg).numpy()[0], expected, atol=1e-6)
    cfg = ALNetConfig(in_channels=1, scaling="percentile", percentiles=(0.0, 100.0), mean=(0.5,), std=(0.25,))
    assert np.allclose(prepare_image(img, cfg).numpy()[0], (img / 250 - 0.5) / 0.25, atol=1e-5)
    flat = prepare_image(np.full((5, 5), 7, np.uint16), cfg)
    assert torch.isfinite(flat).all()

"""Large and hostile images: TIFFs streamed tile by tile to a tiled OME-TIFF (equal to in-memory tiling),
orientation-safe NIfTI volumes (exact round trips for RAS, LPS and oblique affines), decompression bombs."""

import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

import alnet_fast
from alnet_fast import io
from alnet_fast.dicom import group_series, segment_series
from alnet_fast.errors import ImageReadError
from alnet_fast.inputs import STATISTICS_SAMPLE
from alnet_fast.outputs import probs_to_mask
from alnet_fast.orientation import from_plane, to_plane
from alnet_fast.volumes import segment_nifti
from alnet_fast.wsi import LazyTiff, segment_tiff

SMALL = alnet_fast.ALNetConfig(in_channels=1, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                               context_channels=16, decoder_channels=16)


def small(**changes):
    config = alnet_fast.ALNetConfig(**{**SMALL.to_dict(), **changes})
    return alnet_fast.load(alnet_fast.ALNet(config).eval(), backend="torch", device="cpu", batch_size=3)


def textured(h, w, channels=None, seed=0):
    """A smooth random uint8 image (structure at several scales, so masks are not trivial)."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    coarse = rng.random((h // 50 + 2, w // 50 + 2) + shape[2:])
    image = np.kron(coarse, np.ones((50, 50) + (1,) * len(shape[2:])))[:h, :w] * 200 + rng.random(shape) * 55
    return image.astype(np.uint8)


# Whole-slide TIFFs

def nuclei_mosaic(h, w):
    """The bundled nuclei test image (256 x 256 uint16 fluorescence), mirrored out to h x w."""
    image = io.read_image(Path(alnet_fast.__file__).parent / "data" / "nuclei.tif")
    return np.pad(image, ((0, h - 256), (0, w - 256)), mode="symmetric")


@pytest.mark.parametrize("channels, num_classes, tiff_tile", [(None, 1, (128, 128)), (3, 3, None)])
def test_streamed_tiff_equals_in_memory_tiling(tmp_path, channels, num_classes, tiff_tile):
    """Same statistics grid, same tiles, same batches, same row bands: bit-identical probabilities."""
    if num_classes == 1:  # the bundled nuclei model on real nuclei: a real, non-trivial mask
        model, image = alnet_fast.load("nuclei", backend="torch", device="cpu", batch_size=3), nuclei_mosaic(700, 900)
    else:
        model, image = small(num_classes=num_classes, in_channels=3), textured(700, 900, channels, seed=1)
    tifffile.imwrite(tmp_path / "slide.tif", image, tile=tiff_tile)  # tiled, or one strip per rows
    mask = segment_tiff(model, tmp_path / "slide.tif", tmp_path / "out" / "mask.tif", tmp_path / "out" / "p.tif",
                        tile=256, overlap=0.25)
    expected = model.predict(image, tile=256, overlap=0.25)  # [H, W] or [K, H, W]
    probs = tifffile.imread(tmp_path / "out" / "p.tif")
    np.testing.assert_array_equal(probs, expected if num_classes == 1 else np.moveaxis(expected, 0, -1))
    labels = tifffile.imread(mask)
    np.testing.assert_array_equal(labels, probs_to_mask(expected, num_classes))
    if num_classes == 1:
        assert 0.05 < labels.mean() < 0.95  # the model finds nuclei and background
    with tifffile.TiffFile(mask) as tif:
        assert tif.is_ome and tif.pages[0].is_tiled and tif.pages[0].dtype == np.uint8


def test_streamed_mask_without_probabilities_and_single_tile_images(tmp_path):
    model = small()
    for h, w in ((700, 900), (90, 100)):  # the second fits in one tile: the whole-image path
        image = textured(h, w, seed=h)
        tifffile.imwrite(tmp_path / f"{h}.tif", image)
        out = segment_tiff(model, tmp_path / f"{h}.tif", tmp_path / f"{h}_mask.tif", tile=256)
        np.testing.assert_array_equal(tifffile.imread(out), model.segment(image, tile=256))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["700.tif", "700_mask.tif", "90.tif", "90_mask.tif"]  # no temporaries left


def test_scaling_statistics_come_from_a_strided_sample_of_large_images(tmp_path, monkeypatch):
    """Past STATISTICS_SAMPLE values the percentiles come from a strided grid, in memory and streamed alike."""
    monkeypatch.setattr("alnet_fast.inputs.STATISTICS_SAMPLE", 700 * 900 // 5)  # stride 3 on this image
    assert STATISTICS_SAMPLE > 700 * 900  # (the real limit leaves such an image whole)
    model = small()
    image = textured(700, 900, seed=5)
    tifffile.imwrite(tmp_path / "s.tif", image, tile=(256, 256))
    segment_tiff(model, tmp_path / "s.tif", tmp_path / "m.tif", tmp_path / "p.tif", tile=256)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), model.predict(image, tile=256))


def test_lazy_tiff_refuses_stacks_and_reads_regions(tmp_path):
    image = textured(300, 200, 3)
    tifffile.imwrite(tmp_path / "rgb.tif", image, tile=(64, 64))
    with LazyTiff(tmp_path / "rgb.tif") as lazy:
        assert (lazy.height, lazy.width) == (300, 200)
        np.testing.assert_array_equal(lazy.read(slice(10, 90), slice(150, 200)), image[10:90, 150:200])
        np.testing.assert_array_equal(lazy.read(slice(None, None, 7), slice(None, None, 7)), image[::7, ::7])
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 64, 64), np.uint8))
    with pytest.raises(ImageReadError, match="expected a 2-D image"):
        LazyTiff(tmp_path / "stack.tif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 40)
    with pytest.raises(ImageReadError, match="bad.tif"):
        LazyTiff(tmp_path / "bad.tif")


# Orientation-safe volumes

def oblique(angle_deg: float) -> np.ndarray:
    """A 2 mm RAS affine rotated by ``angle_deg`` about the S axis (still closest to R, A, S)."""
    a = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = rotation * 2.0, (-40, -50, -30)
    return affine


def stored_as(data_ras: np.ndarray, affine_ras: np.ndarray, axcodes: tuple[str, str, str]):
    """The same voxels and world positions stored in another voxel order. -> (data, affine)."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

    transform = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(axcodes))
    data = apply_orientation(data_ras, transform)
    return data, affine_ras @ inv_ornt_aff(transform, data_ras.shape)


@pytest.mark.parametrize("axcodes", [("R", "A", "S"), ("L", "P", "S"), ("A", "S", "L"), ("P", "I", "R")])
@pytest.mark.parametrize("angle", [0.0, 20.0])
def test_plane_reorientation_round_trips_exactly(axcodes, angle):
    rng = np.random.default_rng(0)
    ras = rng.random((6, 7, 8, 2))
    data, affine = stored_as(ras, oblique(angle), axcodes)
    assert nib.aff2axcodes(affine) == axcodes
    for plane in ("axial", "coronal", "sagittal"):
        turned = to_plane(data, affine, plane)
        np.testing.assert_array_equal(from_plane(turned, affine, plane), data)
    np.testing.assert_array_equal(to_plane(data, affine, "axial"), ras)  # axial order is RAS
    np.testing.assert_array_equal(to_plane(data, affine, "sagittal"), ras.transpose(1, 2, 0, 3))


@pytest.mark.parametrize("axcodes", [("L", "P", "S"), ("S", "R", "A")])
def test_volume_segmented_in_its_plane_whatever_the_voxel_order(tmp_path, axcodes):
    """The same anatomy stored RAS and otherwise gives the same mask in world space, on the input's grid."""
    model = alnet_fast.load("brain", backend="torch", device="cpu")  # its checkpoint records plane="axial"
    with np.load(Path(__file__).parent / "data" / "brain_test_slices.npz") as f:
        ras = np.moveaxis(f["images"][:3], 0, -1).astype(np.float32)  # axial [R, A] slices of a RAS T1 -> [R, A, S]
    nib.save(nib.Nifti1Image(ras, oblique(20.0)), tmp_path / "ras.nii.gz")
    data, affine = stored_as(ras, oblique(20.0), axcodes)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "other.nii.gz")
    reference = segment_nifti(model, tmp_path / "ras.nii.gz")
    result = segment_nifti(model, tmp_path / "other.nii.gz")
    assert result.mask.shape == data.shape and 0.1 < result.mask.mean() < 0.9
    np.testing.assert_array_equal(result.mask, stored_as(reference.mask, oblique(20.0), axcodes)[0])
    np.testing.assert_array_equal(result.probs, stored_as(reference.probs, oblique(20.0), axcodes)[0])
    # axial slices of RAS data are volume[:, :, z]; a raw-axis run of the other file would not agree
    np.testing.assert_array_equal(reference.mask[:, :, 1], model.segment(ras[:, :, 1]))
    raw = segment_nifti(model, tmp_path / "other.nii.gz", axis=2)
    assert not np.array_equal(raw.mask, result.mask)
    coronal = segment_nifti(model, tmp_path / "other.nii.gz", plane="coronal")  # the override
    np.testing.assert_array_equal(to_plane(coronal.mask, affine, "coronal")[:, :, 100],
                                  model.segment(ras.transpose(0, 2, 1)[:, :, 100]))  # coronal: [R, S] slices


# Decompression bombs and absurd headers

def png_claiming(path, width: int, height: int) -> None:
    """A valid 1 x 1 gray PNG whose IHDR then claims width x height (CRC recomputed): an absurd header."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.write_bytes(bytes(data))


def test_decompression_bomb_png_raises_image_read_error_naming_the_limit(tmp_path, monkeypatch):
    png_claiming(tmp_path / "bomb.png", 60000, 60000)
    with pytest.raises(ImageReadError, match="ALNET_FAST_MAX_IMAGE_PIXELS") as info:
        io.read_image(tmp_path / "bomb.png")
    assert "bomb.png" in str(info.value) and str(io.max_image_pixels()) in str(info.value)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own setting is restored


def test_limit_applies_to_tiffs_and_can_be_lowered(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((300, 400), np.uint8))
    Image.new("L", (400, 300)).save(tmp_path / "big.png")
    monkeypatch.setenv("ALNET_FAST_MAX_IMAGE_PIXELS", "100000")
    for name in ("big.tif", "big.png"):
        with pytest.raises(ImageReadError, match="400 x 300 = 120000 pixels, more than the limit of 100000"):
            io.read_image(tmp_path / name)
    monkeypatch.setenv("ALNET_FAST_MAX_IMAGE_PIXELS", "120000")  # raised to the image's size: read
    assert all(io.read_image(tmp_path / name).shape == (300, 400) for name in ("big.tif", "big.png"))
    monkeypatch.setenv("ALNET_FAST_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="must be an integer"):
        io.read_image(tmp_path / "big.png")


# The command line

def cli(*argv) -> int:
    import alnet_fast.cli

    return alnet_fast.cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    alnet_fast.save(alnet_fast.ALNet(SMALL).eval(), path)
    return path


def test_cli_records_a_bomb_as_failed_and_segments_the_rest(tmp_path, checkpoint, capsys):
    (tmp_path / "in").mkdir()
    png_claiming(tmp_path / "in" / "bomb.png", 60000, 60000)
    Image.fromarray(textured(70, 90)).save(tmp_path / "in" / "fine.png")
    assert cli("segment", tmp_path / "in", "-o", tmp_path / "out", "--model", checkpoint, "-q") == 1
    captured = capsys.readouterr()
    assert "1 segmented, 0 skipped (outputs exist), 1 failed" in captured.out
    assert "bomb.png" in captured.err and "ALNET_FAST_MAX_IMAGE_PIXELS" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fine.png"]


def test_cli_streams_large_tiffs_to_tiled_tiffs(tmp_path, checkpoint, monkeypatch, capsys):
    monkeypatch.setattr("alnet_fast.wsi.STREAM_PIXELS", 500 * 500)  # 700 x 900 counts as large here
    (tmp_path / "in").mkdir()
    image = textured(700, 900, seed=8)
    tifffile.imwrite(tmp_path / "in" / "slide.tif", image, tile=(256, 256))
    tifffile.imwrite(tmp_path / "in" / "small.tif", image[:100, :100])
    out = tmp_path / "out"
    assert cli("segment", tmp_path / "in", "-o", out, "--model", checkpoint, "--tile", 256, "--probs", "-q") == 0
    assert sorted(p.name for p in out.iterdir()) == ["slide.tif", "slide_probs.tif", "small.png", "small_probs.tif"]
    model = alnet_fast.load(checkpoint, batch_size=4)  # as the command loads it: same backend, same batches
    np.testing.assert_array_equal(tifffile.imread(out / "slide_probs.tif"), model.predict(image, tile=256))
    np.testing.assert_array_equal(tifffile.imread(out / "slide.tif"), model.segment(image, tile=256))


def test_cli_writes_one_dicom_seg_per_series(tmp_path, checkpoint, capsys):
    import highdicom as hd
    import pydicom
    from pydicom.data import get_testdata_file
    from test_dicom_series import write_series

    (tmp_path / "in" / "a").mkdir(parents=True)
    ct_uid, ct_uids = write_series(tmp_path / "in" / "a", "CT_small.dcm", [0.0, 5.0, 2.5], seed=1)
    mr_uid, _ = write_series(tmp_path / "in" / "a", "MR_small.dcm", [1.0, 2.0], seed=2)
    (tmp_path / "in" / "b.dcm").write_bytes(open(get_testdata_file("MR_truncated.dcm"), "rb").read()[:200])
    Image.fromarray(textured(70, 90)).save(tmp_path / "in" / "c.png")
    out = tmp_path / "out"
    assert cli("segment", tmp_path / "in", "-o", out, "--model", checkpoint, "--dicom-seg", "--probs", "-q") == 1
    captured = capsys.readouterr()
    assert "3 segmented, 0 skipped (outputs exist), 1 failed" in captured.out and "b.dcm" in captured.err
    assert sorted(p.name for p in (out / "a").iterdir()) == sorted([f"{ct_uid}_seg.dcm", f"{mr_uid}_seg.dcm"])
    seg = hd.seg.segread(out / "a" / f"{ct_uid}_seg.dcm")
    assert seg.SegmentationType == "FRACTIONAL" and seg.ManufacturerModelName == "small"
    model = alnet_fast.load(checkpoint, batch_size=4)
    (ct,) = [s for s in group_series(sorted((tmp_path / "in" / "a").glob("*.dcm"))) if s.uid == ct_uid]
    expected = segment_series(model, ct)  # [3, H, W] in position order, as ct_uids
    back = seg.get_pixels_by_source_instance(ct_uids, segment_numbers=[1], dtype=np.float32)[..., 0]
    np.testing.assert_allclose(back, expected, atol=0.5 / 255 + 1e-6)  # 8-bit fractional storage
    assert pydicom.dcmread(out / "a" / f"{ct_uid}_seg.dcm").ReferencedSeriesSequence[0].SeriesInstanceUID == ct_uid
    assert (out / "c.png").is_file()


def test_dicom_header_claiming_an_absurd_size_is_refused_before_decoding(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.Rows = ds.Columns = 60000
    ds.save_as(tmp_path / "absurd.dcm")
    with pytest.raises(ImageReadError, match="60000 x 60000 = 3600000000 pixels, more than the limit"):
        io.read_image(tmp_path / "absurd.dcm")

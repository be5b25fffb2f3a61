"""Readers and writers on real files: DICOM (pydicom's bundled MR/CT slices), NIfTI (nibabel's bundled
anatomical volume), PNG/TIFF, and the atomic writers."""

import os
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from nibabel.testing import data_path as NIBABEL_DATA
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_windowing

import alnet_fast
from alnet_fast import atomic, io, paths
from alnet_fast.errors import ImageReadError
from alnet_fast.volumes import read_nifti, segment_nifti, stack_slices, volume_slices, write_nifti_like

SMALL = alnet_fast.ALNetConfig(in_channels=1, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                               context_channels=16, decoder_channels=16)


@pytest.fixture(scope="module")
def segmenter():
    return alnet_fast.load(alnet_fast.ALNet(SMALL).eval(), backend="torch", device="cpu", batch_size=8)


# DICOM

def test_ct_slice_gets_modality_rescale_to_hounsfield_units():
    path = get_testdata_file("CT_small.dcm")  # RescaleSlope 1, RescaleIntercept -1024, no window
    ds = pydicom.dcmread(path)
    values = io.read_dicom(path)
    assert values.dtype == np.float32 and values.shape == (128, 128)
    # pydicom's own modality LUT is the oracle; float32 holds these integers exactly
    np.testing.assert_array_equal(values, apply_modality_lut(ds.pixel_array, ds).astype(np.float32))
    assert values.min() == ds.pixel_array.min() - 1024


def test_mr_slice_window_maps_linearly_onto_unit_range():
    path = get_testdata_file("MR_small.dcm")  # WindowCenter 600, WindowWidth 1600
    ds = pydicom.dcmread(path)
    windowed = io.read_dicom(path)
    assert windowed.dtype == np.float32 and 0.0 <= windowed.min() and windowed.max() <= 1.0
    # pydicom's apply_windowing (onto its own output range) must be an increasing affine map of ours
    # wherever neither clips; residual tolerance: float32 rounding of values of order 1e4.
    reference = apply_windowing(apply_modality_lut(ds.pixel_array, ds), ds)
    inside = (windowed > 0) & (windowed < 1)
    assert inside.sum() > 1000
    slope, intercept = np.polyfit(windowed[inside], reference[inside], 1)
    assert slope > 0
    np.testing.assert_allclose(slope * windowed[inside] + intercept, reference[inside], atol=1e-2 * slope)
    raw = io.read_dicom(path, window=False)
    np.testing.assert_array_equal(raw, ds.pixel_array.astype(np.float32))  # no rescale in this file


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "inverted.dcm")
    normal = io.read_dicom(get_testdata_file("MR_small.dcm"))
    np.testing.assert_allclose(io.read_dicom(tmp_path / "inverted.dcm"), 1.0 - normal, atol=1e-7)


def test_dicom_without_suffix_is_recognised_and_segmentable_by_path(tmp_path, segmenter):
    target = tmp_path / "IM0001"
    shutil.copy(get_testdata_file("CT_small.dcm"), target)
    assert io.is_dicom(target)
    np.testing.assert_array_equal(io.read_image(target), io.read_dicom(get_testdata_file("CT_small.dcm")))
    mask = segmenter.segment(get_testdata_file("CT_small.dcm"))  # Segmenter path input goes through io
    assert mask.shape == (128, 128) and mask.dtype == np.uint8


@pytest.mark.parametrize("name, match", [("MR_truncated.dcm", "not a readable DICOM"),
                                         ("SC_rgb_rle_2frame.dcm", "multi-frame")])
def test_bad_dicoms_raise_image_read_error_naming_the_file(name, match):
    path = get_testdata_file(name)
    with pytest.raises(ImageReadError, match=match) as info:
        io.read_image(path)
    assert name in str(info.value)


def test_non_dicom_named_dcm_is_refused(tmp_path):
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(b"not a dicom file at all" * 10)
    with pytest.raises(ImageReadError, match="fake.dcm"):
        io.read_image(fake)


# NIfTI

def anatomical(tmp_path, gz: bool = True):
    """nibabel's bundled anatomical volume (33 x 41 x 25, int16, 2 mm, a flipped x axis), copied as .nii.gz."""
    image = nib.load(NIBABEL_DATA / "anatomical.nii")
    path = tmp_path / ("anatomical.nii.gz" if gz else "anatomical.nii")
    nib.save(image, path)
    return path


@pytest.mark.parametrize("axis", [0, 2])
def test_nifti_round_trip_keeps_grid_affine_and_header(tmp_path, segmenter, axis):
    path = anatomical(tmp_path)
    result = segment_nifti(segmenter, path, axis=axis)
    source = nib.load(path)
    assert result.mask.shape == source.shape and result.mask.dtype == np.uint8
    assert result.probs.shape == source.shape and result.probs.dtype == np.float32
    # each slice of the volume result is what segmenting that slice alone gives
    volume = source.get_fdata(dtype=np.float32)
    for index in (0, volume.shape[axis] // 2):
        alone = segmenter.segment(np.take(volume, index, axis=axis))
        np.testing.assert_array_equal(np.take(result.mask, index, axis=axis), alone)
    out = write_nifti_like(tmp_path / "out" / "mask.nii.gz", result.mask, result.image)
    back = nib.load(out)
    np.testing.assert_array_equal(back.affine, source.affine)
    assert back.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(back.dataobj), result.mask)
    for field in ("dim", "pixdim", "qform_code", "sform_code", "xyzt_units", "quatern_b", "srow_x"):
        np.testing.assert_array_equal(back.header[field], source.header[field], err_msg=field)
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_volume_slices_and_stack_are_inverse():
    volume = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    for axis in range(3):
        np.testing.assert_array_equal(stack_slices(volume_slices(volume, axis), axis), volume)
    probs = [np.stack([s, -s]) for s in volume_slices(volume, 1)]  # [K=2, H, W] per slice
    assert stack_slices(probs, 1).shape == (2, 3, 4, 2)
    with pytest.raises(ValueError, match="axis"):
        volume_slices(volume, 3)


def test_bad_nifti_files_are_refused_with_their_path(tmp_path):
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(anatomical(tmp_path).read_bytes()[:2000])
    with pytest.raises(ImageReadError, match="truncated.nii.gz"):
        read_nifti(truncated)
    with pytest.raises(ImageReadError, match="4-D"):
        read_nifti(NIBABEL_DATA / "example4d.nii.gz")
    with pytest.raises(ImageReadError, match="NIfTI volume"):
        io.read_image(NIBABEL_DATA / "anatomical.nii")


# 2-D files and atomic writers

def test_png_and_tiff_round_trips_keep_dtype(tmp_path):
    mask = (np.arange(60 * 50).reshape(60, 50) % 3).astype(np.uint8)
    deep = (np.arange(60 * 50).reshape(60, 50) * 21).astype(np.uint16)
    probs = np.random.default_rng(0).random((2, 60, 50)).astype(np.float32)
    np.testing.assert_array_equal(io.read_image(io.write_png(tmp_path / "m.png", mask)), mask)
    back = io.read_image(io.write_png(tmp_path / "d.png", deep))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, deep)
    np.testing.assert_array_equal(io.read_image(io.write_tiff(tmp_path / "p.tif", probs[0])), probs[0])
    import tifffile
    np.testing.assert_array_equal(tifffile.imread(io.write_tiff(tmp_path / "k.tif", probs)), probs)


def test_interrupted_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "mask.png"
    io.write_png(target, np.zeros((8, 8), np.uint8))
    before = target.read_bytes()

    def half_then_interrupt(self, fp, format=None, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        io.write_png(target, np.ones((8, 8), np.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]


def interrupt_at_line(k: int, files: tuple[str, ...]):
    """A trace function that raises KeyboardInterrupt at the k-th line executed in ``files``."""
    seen = 0

    def trace(frame, event, arg):
        nonlocal seen
        if frame.f_code.co_filename not in files:
            return None
        if event == "line":
            seen += 1
            if seen == k:
                raise KeyboardInterrupt
        return trace

    return trace


def test_ctrl_c_at_every_line_of_an_atomic_write_leaves_no_temporary(tmp_path):
    """Ctrl-C lands at each line of atomic_path, its helpers and contextlib's with-machinery in turn.

    Whatever the point, the folder ends up with the old or the new mask, whole, once remove_unfinished()
    (which the CLI runs on Ctrl-C) has swept what the interrupted writer could not.
    """
    import contextlib
    import sys

    target = tmp_path / "mask.png"
    old, new = np.zeros((8, 8), np.uint8), np.full((8, 8), 7, np.uint8)
    files = (io.__file__, atomic.__file__, paths.__file__, contextlib.__file__)
    interrupted = 0
    for k in range(1, 200):
        io.write_png(target, old)
        sys.settrace(interrupt_at_line(k, files))
        try:
            io.write_png(target, new)
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            sys.settrace(None)
        atomic.remove_unfinished()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"], k
        assert io.read_image(target).tolist() in (old.tolist(), new.tolist()), k
        if interrupted < k:  # the k-th line was never reached: every point has been tried
            break
    assert 10 < interrupted < 199 and not atomic._UNFINISHED
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # the usual mode of a new file, not mkstemp's 0600


def test_suffix_helpers():
    assert paths.full_suffix("a/b.NII.GZ") == ".nii.gz" and paths.full_suffix("x.png") == ".png"
    assert str(paths.strip_suffix("a/brain.nii.gz")) == "a/brain" and str(paths.strip_suffix("IM0001")) == "IM0001"
    with pytest.raises(ValueError, match="uint8"):
        io.write_png("never.png", np.zeros((4, 4), np.float32))


def test_write_nifti_like_refuses_other_grids_and_suffixes(tmp_path):
    like = nib.load(NIBABEL_DATA / "anatomical.nii")
    with pytest.raises(ValueError, match="does not match the volume's grid"):
        write_nifti_like(tmp_path / "m.nii.gz", np.zeros((33, 41, 24), np.uint8), like)
    with pytest.raises(ValueError, match="must end in .nii"):
        write_nifti_like(tmp_path / "m.png", np.zeros(like.shape, np.uint8), like)
    assert not list(tmp_path.iterdir())

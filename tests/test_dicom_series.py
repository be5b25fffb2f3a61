"""DICOM series and SEG on real files: pydicom's bundled CT/MR slices made into series (new UIDs and positions,
files written in shuffled order), segmented, written as DICOM SEG with highdicom and read back by highdicom
and pydicom; pixel values through pydicom's modality and VOI LUTs; a compressed file without a decoder."""

import random
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import JPEGLosslessSV1, SegmentationStorage, generate_uid

import alnet_fast
from alnet_fast import io
from alnet_fast.dicom import group_series, segment_series, write_segmentation
from alnet_fast.outputs import probs_to_mask

BRAIN_SLICES = Path(__file__).parent / "data" / "brain_test_slices.npz"
SMALL = alnet_fast.ALNetConfig(in_channels=1, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                               context_channels=16, decoder_channels=16)


@pytest.fixture(scope="module")
def segmenter():
    return alnet_fast.load(alnet_fast.ALNet(SMALL).eval(), backend="torch", device="cpu", batch_size=8)


def write_series(folder, source: str, positions: list[float], seed: int, orientation=None, pixels=None):
    """Slices of a bundled file as one new series at ``positions`` (mm along the slice normal), written in a
    shuffled order with InstanceNumbers that disagree with the positions. -> (series UID, SOP UIDs by position).

    pixels: int16 [S, H, W] to store instead of the file's own (shifted) pixels, slice i at positions[i]."""
    series_uid, uids = generate_uid(), {}
    order = list(range(len(positions)))
    random.Random(seed).shuffle(order)
    for n, i in enumerate(order):
        ds = pydicom.dcmread(get_testdata_file(source))
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, generate_uid()
        ds.InstanceNumber = len(positions) - i  # reversed: only the positions give the right order
        if orientation is not None:
            ds.ImageOrientationPatient = orientation
        row, col = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
        ds.ImagePositionPatient = list(np.cross(row, col) * positions[i] + 10.0)
        stored = ds.pixel_array
        if pixels is None:
            pixels_i = np.roll(stored, 7 * i, axis=1)  # every slice different
        else:
            pixels_i = pixels[i]
            ds.Rows, ds.Columns = pixels_i.shape
            for window in ("WindowCenter", "WindowWidth"):
                del ds[window]
        ds.PixelData = pixels_i.astype(stored.dtype).tobytes()
        ds.save_as(folder / f"{seed}_{n:02d}.dcm")
        uids[positions[i]] = ds.SOPInstanceUID
    return series_uid, [uids[p] for p in sorted(positions)]


def test_files_are_grouped_by_series_and_sorted_along_the_slice_normal(tmp_path):
    ct_uid, ct_order = write_series(tmp_path, "CT_small.dcm", [5.0, -2.5, 0.0, 12.5, 7.5], seed=1)
    # a sagittal series: its normal is -x, so positions along it sort by -x
    mr_uid, mr_order = write_series(tmp_path, "MR_small.dcm", [3.0, 1.0, 2.0], seed=2,
                                    orientation=[0, 1, 0, 0, 0, -1])
    series = {s.uid: s for s in group_series(sorted(tmp_path.glob("*.dcm")))}
    assert set(series) == {ct_uid, mr_uid}
    assert [h.SOPInstanceUID for h in series[ct_uid].headers] == ct_order
    assert [h.SOPInstanceUID for h in series[mr_uid].headers] == mr_order
    assert all(h.get("PixelData") is None for h in series[ct_uid].headers)  # headers only, pixels read later


def test_binary_seg_reads_back_with_highdicom_and_pydicom(tmp_path):
    brain = alnet_fast.load("brain", backend="torch", device="cpu")
    with np.load(BRAIN_SLICES) as f:  # held-out axial slices of the brain model's T1 volume, as MR slices
        slices = f["images"][:4].astype(np.int16) * 4
    write_series(tmp_path, "MR_small.dcm", [0.0, 2.5, 5.0, 7.5], seed=3, pixels=slices)
    (series,) = group_series(sorted(tmp_path.glob("*.dcm")))
    probs = segment_series(brain, series)
    assert probs.shape == (4, 181, 217)
    for i, path in enumerate(series.paths):  # each slice as the 2-D path segments it; batch of 4 vs 1:
        np.testing.assert_allclose(probs[i], brain.predict(path), atol=1e-6)  # conv accumulation order
    mask = probs_to_mask(probs, 1)
    assert 0.1 < mask.mean() < 0.9  # a non-trivial mask, so the comparison below can fail
    out = write_segmentation(tmp_path / "out" / "seg.dcm", series, probs, 1, "brain")

    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "BINARY" and seg.get_segment_numbers() == [1]
    uids = [h.SOPInstanceUID for h in series.headers]
    back = seg.get_pixels_by_source_instance(uids, segment_numbers=[1])  # [S, H, W, segments]
    np.testing.assert_array_equal(back[..., 0], mask)

    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == SegmentationStorage and ds.Modality == "SEG"
    referenced = ds.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == series.uid
    assert {r.ReferencedSOPInstanceUID for r in referenced.ReferencedInstanceSequence} == set(uids)
    algorithm = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "alnet_fast" and algorithm.AlgorithmVersion == alnet_fast.__version__
    assert "brain" in algorithm.AlgorithmParameters and ds.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert ds.ManufacturerModelName == "brain" and ds.FrameOfReferenceUID == series.headers[0].FrameOfReferenceUID


def test_fractional_seg_holds_the_probabilities_and_multi_class_masks_get_one_segment_per_class(tmp_path):
    model = alnet_fast.load(alnet_fast.ALNet(alnet_fast.ALNetConfig(**{**SMALL.to_dict(), "num_classes": 3})).eval(),
                            backend="torch", device="cpu")
    write_series(tmp_path, "MR_small.dcm", [0.0, 1.5, 3.0], seed=4)
    (series,) = group_series(sorted(tmp_path.glob("*.dcm")))
    probs = segment_series(model, series)  # [S, 3, H, W]
    uids = [h.SOPInstanceUID for h in series.headers]

    binary = hd.seg.segread(write_segmentation(tmp_path / "b.dcm", series, probs, 3, "three"))
    labels = binary.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], combine_segments=True)
    np.testing.assert_array_equal(labels, probs.argmax(1))

    fractional = hd.seg.segread(write_segmentation(tmp_path / "f.dcm", series, probs, 3, "three", fractional=True))
    assert fractional.SegmentationType == "FRACTIONAL" and fractional.get_segment_numbers() == [1, 2]
    back = fractional.get_pixels_by_source_instance(uids, segment_numbers=[1, 2], dtype=np.float32)
    # stored as 8 bits over MaximumFractionalValue 255: within half a step of the float32 probability
    np.testing.assert_allclose(back, np.moveaxis(probs[:, 1:], 1, -1), atol=0.5 / 255 + 1e-6)


def test_pixels_go_through_pydicom_voi_lut_sequence(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    item = pydicom.Dataset()
    item.add_new("LUTDescriptor", "US", [4096, 0, 8])  # 4096 entries from stored value 0, 8-bit output
    item.add_new("LUTData", "US", [min(255, v // 9) for v in range(4096)])  # non-linear: saturates at 2295
    ds.VOILUTSequence = [item]
    ds.save_as(tmp_path / "lut.dcm")
    ds = pydicom.dcmread(tmp_path / "lut.dcm")
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float32) / 255.0
    np.testing.assert_allclose(io.read_dicom(tmp_path / "lut.dcm"), expected, atol=1e-7)  # float32 rounding


def test_rle_slice_decodes_like_the_uncompressed_one():
    np.testing.assert_array_equal(io.read_dicom(get_testdata_file("MR_small_RLE.dcm")),
                                  io.read_dicom(get_testdata_file("MR_small.dcm")))


def test_compressed_slice_without_a_decoder_raises_a_typed_error_naming_the_package():
    if get_decoder(JPEGLosslessSV1).is_available:  # Pillow and pyjpegls (highdicom's) do not decode it
        pytest.skip("a JPEG Lossless (process 14) decoder plugin (pylibjpeg or gdcm) is installed here")
    with pytest.raises(io.MissingDecoderError, match="JPEG Lossless") as info:
        io.read_image(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    assert "pylibjpeg" in str(info.value) and "SC_rgb_jpeg_gdcm.dcm" in str(info.value)
    assert isinstance(info.value, alnet_fast.ImageReadError)

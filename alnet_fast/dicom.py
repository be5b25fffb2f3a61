"""DICOM series in, DICOM Segmentation (SEG) out.

``group_series`` sorts single-frame files into series (SeriesInstanceUID) and orders each series along
its slice normal (ImagePositionPatient projected on the cross product of ImageOrientationPatient's row
and column directions; InstanceNumber where positions are missing). ``segment_series`` segments every
slice (pixels through pydicom's modality and VOI LUTs, see alnet_fast.io.read_dicom) and
``write_segmentation`` stores the masks as a DICOM SEG with highdicom: BINARY segments, or FRACTIONAL
ones holding the probabilities, referencing the source instances and naming the algorithm
(alnet_fast, its version, the model).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ImageReadError
from .io import optional_import, read_dicom
from .outputs import probs_to_mask


@dataclass
class DicomSeries:
    """One series: its UID, and its files with their headers (no pixel data), sorted along the slice normal."""

    uid: str
    paths: list[Path]
    headers: list  # pydicom Datasets read with stop_before_pixels


def group_series(paths: list[str | os.PathLike], errors: list | None = None) -> list[DicomSeries]:
    """Single-frame DICOM files -> their series, each sorted along its slice normal; in first-seen order.

    A file whose header cannot be read, or has no SeriesInstanceUID, raises ImageReadError; with an
    ``errors`` list it is appended there as (path, error) and left out instead.
    """
    pydicom = optional_import("pydicom", "grouping DICOM files into series")
    by_uid: dict[str, list[tuple[Path, object]]] = {}
    for path in map(Path, paths):
        try:
            header = _read_header(pydicom, path)
        except ImageReadError as exc:
            if errors is None:
                raise
            errors.append((path, exc))
            continue
        by_uid.setdefault(str(header.SeriesInstanceUID), []).append((path, header))
    series = []
    for uid, members in by_uid.items():
        members.sort(key=lambda item: slice_sort_key(item[1], item[0]))
        series.append(DicomSeries(uid, [p for p, _ in members], [h for _, h in members]))
    return series


def _read_header(pydicom, path: Path):
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises InvalidDicomError, OSError, ValueError... on bad files
        raise ImageReadError(f"{str(path)!r} is not a readable DICOM file: {exc}") from exc
    if header.get("SeriesInstanceUID") is None:
        raise ImageReadError(f"{str(path)!r} has no SeriesInstanceUID; it cannot be grouped into a series")
    return header


def slice_sort_key(header, path: Path) -> tuple:
    """Position along the slice normal (mm) when the header has ImagePositionPatient and
    ImageOrientationPatient, else the InstanceNumber, else the file name."""
    position, orientation = header.get("ImagePositionPatient"), header.get("ImageOrientationPatient")
    if position is not None and orientation is not None and len(orientation) == 6:
        normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
        return (0, float(np.dot(normal, np.asarray(position, float))), path.name)
    number = header.get("InstanceNumber")
    return (1, float(number), path.name) if number is not None else (2, 0.0, path.name)


def segment_series(segmenter, series: DicomSeries, window: bool = True, tile: int | None = None,
                   overlap: float = 0.25) -> np.ndarray:
    """Probabilities of every slice, in the series' order. -> float32 [S, H, W] or [S, K, H, W]."""
    slices = [read_dicom(path, window) for path in series.paths]
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise ImageReadError(f"series {series.uid} mixes slice shapes {sorted(shapes)}")
    return np.stack(segmenter.predict(slices, tile=tile, overlap=overlap))


def write_segmentation(path: str | os.PathLike, series: DicomSeries, probs: np.ndarray, num_classes: int,
                       model_name: str, fractional: bool = False) -> Path:
    """Write a DICOM SEG for ``series`` from its probabilities ``probs`` ([S, H, W] or [S, K, H, W]), atomically.

    One segment per foreground class (class 1 for a one-class model, 1..K-1 otherwise): BINARY from
    ``probs_to_mask``, or FRACTIONAL (the probability, 8 bits) with ``fractional``.
    """
    hd = optional_import("highdicom", f"writing the DICOM SEG {str(path)!r}")
    from pydicom.sr.codedict import codes

    from . import __version__

    if probs.shape[0] != len(series.paths):
        raise ValueError(f"{probs.shape[0]} probability slices for a series of {len(series.paths)} files")
    if fractional:
        pixels = probs if num_classes == 1 else np.moveaxis(probs[:, 1:], 1, -1)  # [S, H, W, segments]
        kind = hd.seg.SegmentationTypeValues.FRACTIONAL
    else:
        pixels = probs_to_mask(probs, num_classes)  # labels by value: 0 background, k segment k
        kind = hd.seg.SegmentationTypeValues.BINARY
    algorithm = hd.AlgorithmIdentificationSequence(name="alnet_fast", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence,
                                                   parameters={"model": model_name})
    segments = [hd.seg.SegmentDescription(
        segment_number=k, segment_label=f"{model_name} class {k}",
        segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
        for k in range(1, max(num_classes, 2))]
    first = series.headers[0]
    seg = hd.seg.Segmentation(
        source_images=series.headers, pixel_array=pixels, segmentation_type=kind,
        segment_descriptions=segments, series_instance_uid=hd.UID(),
        series_number=int(first.get("SeriesNumber", 0) or 0) + 1000, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="alnet_fast", manufacturer_model_name=model_name,
        software_versions=__version__, device_serial_number="0", series_description=f"alnet_fast {model_name}",
        omit_empty_frames=False)
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return Path(path)

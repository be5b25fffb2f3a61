"""Image files in and out.

Readers: PNG/JPEG/BMP via Pillow, TIFF (8/16-bit, float) via tifffile, DICOM slices via pydicom
(modality rescale, then the VOI window when the file has one). NIfTI volumes: see alnet_fast.volumes.

Writers are atomic (alnet_fast.atomic): an interrupted run never leaves a half-written output under its final
name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path
from .errors import ImageReadError
from .paths import DICOM_SUFFIXES, NIFTI_SUFFIXES, PILLOW_SUFFIXES, TIFF_SUFFIXES, full_suffix
DICOM_MAGIC_OFFSET = 128  # the 128-byte preamble, then b"DICM" (PS3.10 section 7.1)


def is_dicom(path: str | os.PathLike) -> bool:
    """True for a .dcm/.dicom name, or a file that carries the DICOM preamble and "DICM" marker."""
    path = Path(path)
    if full_suffix(path) in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as f:
            f.seek(DICOM_MAGIC_OFFSET)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def read_image(path: str | os.PathLike, window: bool = True) -> np.ndarray:
    """Read a 2-D image file. -> [H, W] or [H, W, C] array in the file's own dtype (uint8, uint16, float32...).

    DICOM slices come back as float32 (see ``read_dicom``; ``window`` is passed on to it).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {str(path)!r} not found")
    if not path.is_file():
        raise ImageReadError(f"{str(path)!r} is not a file")
    suffix = full_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        raise ImageReadError(f"{str(path)!r} is a NIfTI volume, not a 2-D image; use "
                             "alnet_fast.volumes.segment_nifti (or the alnet-fast segment command)")
    if suffix in TIFF_SUFFIXES:
        return _read_tiff(path)
    if suffix not in PILLOW_SUFFIXES and is_dicom(path):
        return read_dicom(path, window)
    return _read_pillow(path)


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise ImageReadError(f"{str(path)!r} is not a readable TIFF image: {exc}") from exc
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.ndim < 2 or array.size == 0:
        raise ImageReadError(f"{str(path)!r} holds no 2-D image data (shape {array.shape})")
    if array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4):
        raise ImageReadError(f"{str(path)!r} holds a stack of shape {array.shape}, not a 2-D image; "
                             "read volumes slice by slice")
    return array


def _read_pillow(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{str(path)!r} is not a readable image: {exc}") from exc


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image as an array, keeping 16-bit and float modes. -> [H, W] or [H, W, C]."""
    if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
    if image.mode == "1":
        image = image.convert("L")
    return np.asarray(image)


def optional_import(module: str, purpose: str):
    """Import an optional dependency (the ``io`` extra), or raise ImageReadError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImageReadError(f"{purpose} needs {module}: pip install 'alnet_fast[io]'") from exc


# DICOM

def read_dicom(path: str | os.PathLike, window: bool = True) -> np.ndarray:
    """One DICOM slice. -> float32 [H, W] (grayscale) or the stored [H, W, 3] array (colour).

    Grayscale pixels go through the modality rescale (``RescaleSlope * stored + RescaleIntercept``:
    Hounsfield units for CT). With ``window`` and a WindowCenter/WindowWidth in the file, the linear
    VOI window then maps them to [0, 1] (PS3.3 C.11.2.1.2.1); MONOCHROME1 is inverted so that bright
    is always high. Multi-frame files are refused: they are volumes.
    """
    path = Path(path)
    pydicom = optional_import("pydicom", f"reading the DICOM file {str(path)!r}")
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises InvalidDicomError, ValueError, AttributeError, ... on bad files
        raise ImageReadError(f"{str(path)!r} is not a readable DICOM image: {exc}") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(f"{str(path)!r} is a multi-frame DICOM ({frames} frames), not a 2-D slice")
    if ds.get("SamplesPerPixel", 1) != 1:
        return pixels
    values = modality_rescale(pixels, float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0))
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if window and center is not None and width is not None and width >= 1:
        values = apply_window(values, center, width)
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":
            values = 1.0 - values
    elif ds.get("PhotometricInterpretation") == "MONOCHROME1":
        values = values.max() + values.min() - values
    return values


def modality_rescale(pixels: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Stored values -> modality values (e.g. HU). pixels: [H, W] integers -> float32 [H, W]."""
    return (pixels.astype(np.float64) * slope + intercept).astype(np.float32)


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear VOI window onto [0, 1]: (x - (c - 0.5)) / (w - 1) + 0.5, clipped. [H, W] -> float32 [H, W]."""
    out = (values.astype(np.float64) - (center - 0.5)) / (width - 1.0) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _first(value) -> float | None:
    """WindowCenter/Width may be multi-valued (several windows): the first is the default one."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return float(value[0]) if len(value) else None
    return float(value)


def write_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8/uint16 [H, W] or uint8 [H, W, 3|4] array as PNG, atomically."""
    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3):
        raise ValueError(f"PNG needs a uint8/uint16 [H, W] or uint8 [H, W, C] array, got {array.dtype} "
                         f"{array.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")
    return Path(path)


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array (e.g. float32 probabilities [H, W] or [K, H, W]) as TIFF, atomically."""
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(array))
    return Path(path)

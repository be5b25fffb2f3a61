"""Image files in and out.

Readers: PNG/JPEG/BMP via Pillow, TIFF (8/16-bit, float) via tifffile, DICOM slices via pydicom
(its modality LUT, then its VOI LUT or window when the file has one). NIfTI volumes: see
alnet_fast.volumes; DICOM series and SEG: alnet_fast.dicom; whole-slide TIFFs read lazily: alnet_fast.wsi.

Images are read whole, so a header claiming more than ``max_image_pixels()`` pixels (Pillow's
decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``, or the ALNET_FAST_MAX_IMAGE_PIXELS environment
variable) is refused with an ImageReadError before anything is decoded.

Writers are atomic (alnet_fast.atomic): an interrupted run never leaves a half-written output under its final
name.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_path
from .errors import ImageReadError
from .paths import DICOM_SUFFIXES, NIFTI_SUFFIXES, PILLOW_SUFFIXES, TIFF_SUFFIXES, full_suffix
DICOM_MAGIC_OFFSET = 128  # the 128-byte preamble, then b"DICM" (PS3.10 section 7.1)
MAX_PIXELS_ENV = "ALNET_FAST_MAX_IMAGE_PIXELS"


class MissingDecoderError(ImageReadError):
    """A DICOM file's compressed transfer syntax needs a decoder package that is not installed."""


def max_image_pixels() -> int:
    """The most pixels an image read whole may have: $ALNET_FAST_MAX_IMAGE_PIXELS, else Pillow's
    decompression-bomb error threshold (2 x PIL.Image.MAX_IMAGE_PIXELS, where Pillow itself raises)."""
    text = os.environ.get(MAX_PIXELS_ENV)
    if text is not None:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{MAX_PIXELS_ENV} must be an integer number of pixels, got {text!r}") from None
    return 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 1 << 62


def check_image_size(path: Path, shape: tuple[int, ...], limit: int | None = None) -> None:
    """ImageReadError when an image of ``shape`` ([H, W] first) exceeds ``limit`` (max_image_pixels())."""
    pixels, limit = int(shape[0]) * int(shape[1]), max_image_pixels() if limit is None else limit
    if pixels > limit:
        raise ImageReadError(
            f"{str(path)!r} claims {shape[1]} x {shape[0]} = {pixels} pixels, more than the limit of {limit} "
            f"for an image read whole (a decompression bomb or a corrupt header?). If the image is genuine, "
            f"raise the limit: set {MAX_PIXELS_ENV}={pixels} in the environment; large TIFFs are streamed "
            "tile by tile instead (alnet_fast.wsi)")


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
        with tifffile.TiffFile(path) as tif:
            check_image_size(path, _yx_shape(tif.series[0]))
            array = tif.asarray()
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise ImageReadError(f"{str(path)!r} is not a readable TIFF image: {exc}") from exc
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.ndim < 2 or array.size == 0:
        raise ImageReadError(f"{str(path)!r} holds no 2-D image data (shape {array.shape})")
    if array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4):
        raise ImageReadError(f"{str(path)!r} holds a stack of shape {array.shape}, not a 2-D image; "
                             "read volumes slice by slice")
    return array


def _yx_shape(series) -> tuple[int, int]:
    """(H, W) of a tifffile series, from its axes (Y and X) or, without them, its first two dimensions."""
    axes, shape = series.axes, series.shape
    if "Y" in axes and "X" in axes:
        return shape[axes.index("Y")], shape[axes.index("X")]
    return shape[0], shape[1] if len(shape) > 1 else 1


_PILLOW_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pillow_bomb_check_off():
    """Pillow's own check in Image.open off (check_image_size applies the same or a raised limit)."""
    with _PILLOW_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _read_pillow(path: Path) -> np.ndarray:
    limit = max_image_pixels()
    try:
        with _pillow_bomb_check_off(), Image.open(path) as image:  # our limit instead of Pillow's
            check_image_size(path, image.size[::-1], limit)
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

    Grayscale pixels go through pydicom's modality LUT (``apply_modality_lut``: the Modality LUT
    Sequence or ``RescaleSlope * stored + RescaleIntercept``, e.g. Hounsfield units for CT). With
    ``window`` and a VOI LUT Sequence or WindowCenter/WindowWidth in the file, pydicom's VOI LUT
    (``apply_voi_lut``: the first LUT or window, LINEAR/LINEAR_EXACT/SIGMOID) follows, its output range
    mapped onto [0, 1]; MONOCHROME1 is inverted so that bright is always high. Multi-frame files are
    refused: they are volumes. A compressed transfer syntax without an installed decoder raises
    MissingDecoderError naming the packages that would decode it.
    """
    path = Path(path)
    pydicom = optional_import("pydicom", f"reading the DICOM file {str(path)!r}")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises InvalidDicomError, ValueError, AttributeError, ... on bad files
        raise ImageReadError(f"{str(path)!r} is not a readable DICOM image: {exc}") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(f"{str(path)!r} is a multi-frame DICOM ({frames} frames), not a 2-D slice")
    check_image_size(path, (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)))
    pixels = dicom_pixel_array(ds, path)
    if ds.get("SamplesPerPixel", 1) != 1:
        return pixels
    try:
        return dicom_gray_values(pixels, ds, window)
    except (ValueError, AttributeError, NotImplementedError) as exc:  # bad LUT descriptors, width < 1...
        raise ImageReadError(f"{str(path)!r}: invalid modality or VOI LUT: {exc}") from exc


def dicom_pixel_array(ds, path: str | os.PathLike) -> np.ndarray:
    """The decoded stored values of a dataset; MissingDecoderError when its compression has no decoder here."""
    from pydicom.pixels import get_decoder

    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError, ValueError, AttributeError... on undecodable data
        syntax = ds.get("file_meta", {}).get("TransferSyntaxUID")
        if syntax is not None and syntax.is_compressed:
            try:
                decoder = get_decoder(syntax)
            except NotImplementedError:
                decoder = None
            if decoder is None or not decoder.is_available:
                needs = "; ".join(decoder.missing_dependencies) if decoder is not None else "no pydicom plugin"
                raise MissingDecoderError(
                    f"{str(path)!r} is compressed as {syntax.name} ({syntax}) and no installed package decodes "
                    f"it: install one of the pydicom decoder plugins ({needs}), e.g. pip install "
                    "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg") from exc
        raise ImageReadError(f"{str(path)!r} is not a readable DICOM image: {exc}") from exc


def dicom_gray_values(pixels: np.ndarray, ds, window: bool = True) -> np.ndarray:
    """Stored grayscale values [H, W] -> float32 [H, W]: modality LUT, then (``window``) VOI LUT onto [0, 1]."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(pixels, ds)
    inverted = ds.get("PhotometricInterpretation") == "MONOCHROME1"
    has_lut = bool(ds.get("VOILUTSequence"))
    has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    if window and (has_lut or has_window):
        lo, hi = _voi_output_range(ds, has_lut)
        values = np.clip((apply_voi_lut(values, ds) - lo) / (hi - lo), 0.0, 1.0)
        return (1.0 - values if inverted else values).astype(np.float32)
    values = values.astype(np.float32)
    return values.max() + values.min() - values if inverted else values


def _voi_output_range(ds, lut: bool) -> tuple[float, float]:
    """(lowest, highest) value pydicom's VOI transform can output: the LUT's bit depth (PS3.3
    C.11.2.1.1), or for a window what it gives far below and far above it (PS3.3 C.11.2.1.2)."""
    from pydicom.pixels import apply_windowing

    if lut:
        return 0.0, float(2 ** ds.VOILUTSequence[0].LUTDescriptor[2] - 1)
    with np.errstate(over="ignore"):
        lo, hi = apply_windowing(np.array([-1e15, 1e15]), ds)
    return float(lo), float(hi)


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

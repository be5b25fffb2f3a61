"""Image file readers: PNG/JPEG/BMP via Pillow, TIFF (8/16-bit, float) via tifffile."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError

TIFF_SUFFIXES = (".tif", ".tiff")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D image file. -> [H, W] or [H, W, C] array in the file's own dtype (uint8, uint16, float32...)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {str(path)!r} not found")
    if not path.is_file():
        raise ImageReadError(f"{str(path)!r} is not a file")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _read_tiff(path)
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

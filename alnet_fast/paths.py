"""File names: the suffixes alnet_fast reads and writes, with ``.nii.gz`` treated as one suffix, and the
directory alnet_fast keeps what it measures in (``default_cache_dir``)."""

from __future__ import annotations

import os
from pathlib import Path

TIFF_SUFFIXES = (".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def full_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix, with ``.nii.gz`` kept whole: "a/b.NII.GZ" -> ".nii.gz", "x.png" -> ".png"."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def strip_suffix(path: str | os.PathLike) -> Path:
    """The path without its (full) suffix: "a/brain.nii.gz" -> "a/brain"."""
    path = Path(path)
    suffix = full_suffix(path)
    return path.with_name(path.name[: len(path.name) - len(suffix)]) if suffix else path


def is_nifti(path: str | os.PathLike) -> bool:
    return full_suffix(path) in NIFTI_SUFFIXES


def default_cache_dir() -> Path:
    """$ALNET_CACHE_DIR, else $XDG_CACHE_HOME/alnet_fast, else ~/.cache/alnet_fast."""
    if os.environ.get("ALNET_CACHE_DIR"):
        return Path(os.environ["ALNET_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alnet_fast"

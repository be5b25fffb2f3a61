"""Does an input look like what a model was trained on? Warn when it plainly does not.

A checkpoint may record its training data in its metadata (``alnet_fast.save(metadata=...)``):
  training_modality  DICOM Modality code ("MR", "CT", ...) or a plain name ("fluorescence microscopy")
  training_dims      "2d" (2-D images) or "3d-slices" (slices of volumes)
The input's modality is known for DICOM files (their Modality tag) and its dimensionality for NIfTI
volumes; a mismatch gives a ModalityMismatchWarning (the command line prints it as one line).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from .checkpoint import resolve_path
from .io import is_dicom
from .paths import is_nifti

MODALITY_KEY, DIMS_KEY = "training_modality", "training_dims"


class ModalityMismatchWarning(UserWarning):
    """An input's modality or dimensionality differs from the data the model was trained on."""


def training_data(source: str | os.PathLike) -> dict[str, str]:
    """{MODALITY_KEY, DIMS_KEY} -> value as recorded in a checkpoint (path or bundled name); {} if not recorded."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(resolve_path(source)), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError):  # a .pt file, or unreadable: load() says why
        return {}
    return {key: metadata[key] for key in (MODALITY_KEY, DIMS_KEY) if key in metadata}


def dicom_modality(path: str | os.PathLike) -> str | None:
    """The Modality tag (e.g. "CT", "MR") of a DICOM file; None when absent or unreadable."""
    try:
        import pydicom

        value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality")
    except Exception:  # noqa: BLE001 -- any unreadable file: reading it for real reports the problem
        return None
    return str(value) if value else None


def mismatch(path: str | os.PathLike, training: dict[str, str]) -> str | None:
    """What input ``path`` is, when it does not match ``training`` (from training_data), e.g. "a CT DICOM,
    but the model was trained on MR volume slices"; None when nothing says so."""
    modality, dims = training.get(MODALITY_KEY), training.get(DIMS_KEY)
    trained_on = " ".join(filter(None, [modality, {"2d": "2-D images", "3d-slices": "volume slices"}.get(dims)]))
    if is_nifti(path) and dims == "2d":
        return f"a NIfTI volume, but the model was trained on {trained_on}"
    if is_dicom(path) and modality is not None:
        found = dicom_modality(path)
        if found is not None and found != modality:
            return f"a {found} DICOM, but the model was trained on {trained_on}"
    return None


def check_input(model: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Warn (ModalityMismatchWarning) when input ``path`` differs from the training data that checkpoint
    ``model`` (path or bundled name) records. -> True when it warned."""
    reason = mismatch(Path(path), training_data(model))
    if reason is not None:
        warnings.warn(f"{str(path)!r} is {reason}; the mask may be meaningless (pick a model trained on such data)",
                      ModalityMismatchWarning, stacklevel=2)
    return reason is not None

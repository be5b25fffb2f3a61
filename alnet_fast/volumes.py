"""NIfTI volumes, segmented slice by slice with the 2-D network.

The volume is read with nibabel (``get_fdata``: the header's scl_slope/scl_inter applied), turned so
that its slices lie in the plane the model was trained on (``plane``, or the config's; see
alnet_fast.orientation), or, for a model that records no plane, cut along the voxel ``axis``. Each
slice is segmented as one image (its own intensity scaling, as the config says), and the masks are
stacked and turned back into the input's own voxel order. The output NIfTI keeps the input's affine and header
(only the data type changes: uint8 labels, float32 probabilities).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ImageReadError
from .atomic import atomic_path
from .io import optional_import
from .orientation import from_plane, to_plane
from .paths import is_nifti
from .outputs import probs_to_mask

if TYPE_CHECKING:
    import nibabel


@dataclass
class VolumeResult:
    """mask: uint8 labels [X, Y, Z] (the input's voxel grid); probs: float32 [X, Y, Z] or [X, Y, Z, K]."""

    mask: np.ndarray
    probs: np.ndarray
    image: nibabel.Nifti1Image  # the input, for its affine and header


def read_nifti(path: str | os.PathLike) -> tuple[nibabel.Nifti1Image, np.ndarray]:
    """(image, float32 volume [X, Y, Z]) of a NIfTI-1/2 file; a trailing singleton 4th dimension is dropped."""
    path = Path(path)
    nib = optional_import("nibabel", f"reading the NIfTI file {str(path)!r}")
    if not path.is_file():
        raise FileNotFoundError(f"NIfTI file {str(path)!r} not found")
    if not is_nifti(path):
        raise ImageReadError(f"{str(path)!r} is not a NIfTI file (.nii or .nii.gz)")
    try:
        image = nib.load(path)
        data = image.get_fdata(dtype=np.float32)  # scl_slope/scl_inter applied; truncation shows here
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, zlib errors...
        raise ImageReadError(f"{str(path)!r} is not a readable NIfTI volume: {exc}") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImageReadError(f"{str(path)!r} holds a {data.ndim}-D array of shape {data.shape}; "
                             "expected a 3-D volume")
    return image, data


def volume_slices(volume: np.ndarray, axis: int) -> list[np.ndarray]:
    """[X, Y, Z] -> the 2-D float32 slices along ``axis`` (0, 1 or 2), in index order."""
    if axis not in (0, 1, 2):
        raise ValueError(f"slice axis must be 0, 1 or 2, got {axis}")
    return [np.ascontiguousarray(s, dtype=np.float32) for s in np.moveaxis(volume, axis, 0)]


def stack_slices(slices: list[np.ndarray], axis: int) -> np.ndarray:
    """Inverse of volume_slices for per-slice results [H, W] or [K, H, W] -> [X, Y, Z] or [X, Y, Z, K]."""
    stacked = np.stack(slices)  # [S, H, W] or [S, K, H, W]
    if stacked.ndim == 4:
        stacked = np.moveaxis(stacked, 1, -1)  # classes last: [S, H, W, K]
    return np.moveaxis(stacked, 0, axis)


def segment_nifti(segmenter, path: str | os.PathLike, axis: int | None = None, tile: int | None = None,
                  overlap: float = 0.25, plane: str | None = None) -> VolumeResult:
    """Segment every slice of a NIfTI volume; tile > 0 tiles large slices (see tiling).

    Slices: in ``plane`` (default: the model's ``config.plane``), whatever the voxel order; along the voxel
    ``axis`` when it is given instead, or when neither plane is known (then axis 2). Outputs are on the
    input's voxel grid either way.
    """
    image, volume = read_nifti(path)
    plane = plane or (segmenter.config.plane if axis is None else None)
    if plane is not None:
        volume, axis = to_plane(volume, image.affine, plane), 2
    axis = 2 if axis is None else axis
    probs = segmenter.predict(volume_slices(volume, axis), tile=tile or None, overlap=overlap)
    k = segmenter.config.num_classes
    mask, probs = stack_slices([probs_to_mask(p, k) for p in probs], axis), stack_slices(probs, axis)
    if plane is not None:
        mask, probs = from_plane(mask, image.affine, plane), from_plane(probs, image.affine, plane)
    return VolumeResult(np.ascontiguousarray(mask), np.ascontiguousarray(probs), image)


def write_nifti_like(path: str | os.PathLike, data: np.ndarray, like) -> Path:
    """Write ``data`` (same voxel grid as ``like``) as NIfTI with ``like``'s affine and header, atomically.

    The stored data type follows ``data`` (uint8 masks, float32 probabilities) with no intensity scaling.
    """
    nib = optional_import("nibabel", f"writing the NIfTI file {str(path)!r}")
    if not is_nifti(path):
        raise ValueError(f"output {str(path)!r} must end in .nii or .nii.gz")
    if data.shape[:3] != like.shape[:3]:
        raise ValueError(f"data of shape {data.shape} does not match the volume's grid {like.shape[:3]}")
    header = like.header.copy()
    header.set_data_dtype(data.dtype)
    out = type(like)(data, like.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(out, tmp)
    return Path(path)

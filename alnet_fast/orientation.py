"""Volumes turned so that their 2-D slices are taken in an anatomical plane, and turned back.

A NIfTI volume may be stored in any voxel order (RAS, LPS, a permutation, an oblique affine); slicing
along a raw voxel axis then hands the network coronal or flipped slices when it was trained on axial
ones. Here the voxel axes are flipped and permuted (nibabel.orientations: the closest axes of the
affine, no resampling, so the round trip is exact) into the plane's order: nibabel's RAS+ order with
the plane's normal moved last, so ``volume[:, :, z]`` is one slice of that plane:

    axial     (R, A, S): slices [R, A]   -- the order the bundled brain model's training slices have
    coronal   (R, S, A): slices [R, S]
    sagittal  (A, S, R): slices [A, S]
"""

from __future__ import annotations

import numpy as np

from .config import PLANES
from .io import optional_import

PLANE_AXCODES = {"axial": ("R", "A", "S"), "coronal": ("R", "S", "A"), "sagittal": ("A", "S", "R")}


def check_plane(plane: str) -> str:
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    return plane


def plane_transform(affine: np.ndarray, plane: str, inverse: bool = False) -> np.ndarray:
    """The nibabel orientation transform ([3, 2]: axis, flip) from a volume's voxel order (given by its
    affine) to ``plane``'s order; ``inverse``: from ``plane``'s order back."""
    optional_import("nibabel", "reorienting a volume")
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    source, target = io_orientation(np.asarray(affine)), axcodes2ornt(PLANE_AXCODES[check_plane(plane)])
    return ornt_transform(target, source) if inverse else ornt_transform(source, target)


def to_plane(data: np.ndarray, affine: np.ndarray, plane: str) -> np.ndarray:
    """data [X, Y, Z, ...] in the affine's voxel order -> the same voxels in ``plane``'s order (a view)."""
    from nibabel.orientations import apply_orientation

    return apply_orientation(data, plane_transform(affine, plane))


def from_plane(data: np.ndarray, affine: np.ndarray, plane: str) -> np.ndarray:
    """Inverse of to_plane: data [..] in ``plane``'s order -> the affine's voxel order [X, Y, Z, ...]."""
    from nibabel.orientations import apply_orientation

    return apply_orientation(data, plane_transform(affine, plane, inverse=True))

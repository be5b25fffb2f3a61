"""Real data sets and their written train / validation / test splits.

A sample is ``(image, mask)``: a raw image array [H, W] in its file's dtype and a boolean mask [H, W].
Nothing is downloaded here: ``scripts/fetch_data.py`` puts the files under ``data/`` (checksummed).

Splits (the test part is never seen in training, not even for validation):
  nuclei (stardist 0.9.2 img2d.tif / mask2d.tif, 512 x 512, CC0): the bottom-right 256 x 256 quadrant
    is the test image; the other three quadrants are split by rows, the top 192 rows of each for
    training and the bottom 64 rows for validation.
  brain (mricron-data ch2.nii.gz / ch2bet.nii.gz, 181 x 217 x 181, BSD-3): axial slices that contain
    brain, grouped into blocks of ``BRAIN_BLOCK`` consecutive slices; block b goes to test when
    b % 5 == 2, to validation when b % 5 == 4, to training otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..config import ALNetConfig

Sample = tuple[np.ndarray, np.ndarray]
SPLITS = ("train", "val", "test")
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data"
FETCH_HINT = "run `python scripts/fetch_data.py` from the repository root to download it (checksummed)"

NUCLEI_QUADRANT = 256
NUCLEI_VAL_ROWS = 64
BRAIN_BLOCK = 8


def default_data_dir() -> Path:
    """``$ALNET_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("ALNET_DATA", "data"))


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} not found; {FETCH_HINT}")
    return path


def quadrants(array: np.ndarray, size: int = NUCLEI_QUADRANT) -> list[np.ndarray]:
    """The four size x size quadrants of a [2 size, 2 size] array: top-left, top-right, bottom-left, bottom-right."""
    if array.shape[:2] != (2 * size, 2 * size):
        raise ValueError(f"expected a {2 * size} x {2 * size} image, got shape {array.shape}")
    return [array[r:r + size, c:c + size] for r in (0, size) for c in (0, size)]


def split_nuclei(image: np.ndarray, labels: np.ndarray) -> dict[str, list[Sample]]:
    """The nuclei split (module docstring) of image [512, 512] and instance labels [512, 512] (> 0 is nucleus)."""
    pairs = list(zip(quadrants(image), quadrants(labels > 0)))
    train_rows = NUCLEI_QUADRANT - NUCLEI_VAL_ROWS
    return {"train": [(im[:train_rows], m[:train_rows]) for im, m in pairs[:3]],
            "val": [(im[train_rows:], m[train_rows:]) for im, m in pairs[:3]],
            "test": [pairs[3]]}


def load_nuclei(root: str | os.PathLike | None = None) -> dict[str, list[Sample]]:
    import tifffile

    root = Path(root) if root is not None else default_data_dir()
    image = tifffile.imread(_require(root / "nuclei" / "img2d.tif"))
    labels = tifffile.imread(_require(root / "nuclei" / "mask2d.tif"))
    return split_nuclei(image, labels)


def brain_block_split(n_slices: int, block: int = BRAIN_BLOCK) -> dict[str, list[int]]:
    """Slice indices 0..n_slices-1 per split: consecutive blocks, block b -> test if b % 5 == 2, val if 4."""
    splits: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i in range(n_slices):
        b = (i // block) % 5
        splits["test" if b == 2 else "val" if b == 4 else "train"].append(i)
    return splits


def split_brain(volume: np.ndarray, brain: np.ndarray) -> dict[str, list[Sample]]:
    """Axial slices [X, Y] of volume [X, Y, Z] and mask [X, Y, Z] (> 0 is brain), split by slice blocks."""
    if volume.shape != brain.shape or volume.ndim != 3:
        raise ValueError(f"volume {volume.shape} and brain mask {brain.shape} must be the same 3-D shape")
    keep = [z for z in range(volume.shape[2]) if brain[:, :, z].any()]
    return {split: [(np.ascontiguousarray(volume[:, :, keep[i]]), brain[:, :, keep[i]] > 0) for i in indices]
            for split, indices in brain_block_split(len(keep)).items()}


def load_brain(root: str | os.PathLike | None = None) -> dict[str, list[Sample]]:
    try:
        import nibabel
    except ImportError as exc:
        raise ImportError("the brain data set is NIfTI: pip install nibabel") from exc
    root = Path(root) if root is not None else default_data_dir()
    volume = np.asarray(nibabel.load(_require(root / "brain" / "ch2.nii.gz")).dataobj)
    brain = np.asarray(nibabel.load(_require(root / "brain" / "ch2bet.nii.gz")).dataobj)
    return split_brain(volume, brain)


DATASETS = {"nuclei": load_nuclei, "brain": load_brain}

# The architecture and normalisation each data set's model is trained with.
DATASET_CONFIGS = {"nuclei": ALNetConfig(in_channels=1, num_classes=1),
                   "brain": ALNetConfig(in_channels=1, num_classes=1, plane="axial")}  # slices [R, A] of RAS


def load_dataset(name: str, root: str | os.PathLike | None = None) -> dict[str, list[Sample]]:
    """{"train", "val", "test"} -> samples of a named data set."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](root)


def bundled_sample(name: str = "nuclei") -> tuple[Path, Path]:
    """(image path, mask path) of a real held-out sample shipped in the package (alnet_fast/data/)."""
    image, mask = SAMPLE_DIR / f"{name}.tif", SAMPLE_DIR / f"{name}_mask.png"
    if not image.is_file() or not mask.is_file():
        names = sorted(p.stem for p in SAMPLE_DIR.glob("*.tif"))
        raise FileNotFoundError(f"no bundled sample {name!r}; bundled samples: {names}")
    return image, mask

"""Real data sets and their written train / validation / test splits.

A sample is ``(image, mask)``: a raw image array [H, W] in its file's dtype and a boolean mask [H, W].
Nothing is downloaded here: ``alnet-fast fetch-data`` (alnet_fast.train.fetch) puts the files under
``default_data_dir()`` (``$ALNET_DATA``, else ``~/.cache/alnet_fast/data``), checksummed.

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
from .fetch import default_data_dir

Sample = tuple[np.ndarray, np.ndarray]
SPLITS = ("train", "val", "test")
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data"
FETCH_HINT = "run `alnet-fast fetch-data` to download it (checksummed), or pass --data DIR"

NUCLEI_QUADRANT = 256
NUCLEI_VAL_ROWS = 64
BRAIN_BLOCK = 8
# The voxel axis each plane's slices are cut along, for the RAS-ordered ch2 volume [X, Y, Z].
PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}


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


def brain_slice_split(brain: np.ndarray, axis: int, with_brain: bool = True) -> dict[str, list[int]]:
    """Indices along ``axis`` of the slices of mask [X, Y, Z] that contain brain (``with_brain``) or none,
    per split: consecutive blocks of them, as ``brain_block_split``."""
    present = (brain > 0).any(axis=tuple(a for a in range(3) if a != axis))
    indices = np.flatnonzero(present == with_brain)
    return {split: [int(indices[i]) for i in positions]
            for split, positions in brain_block_split(len(indices)).items()}


def brain_slice(volume: np.ndarray, brain: np.ndarray, axis: int, index: int) -> Sample:
    """(image, bool mask) of one slice of volume [X, Y, Z] along ``axis``: sagittal [Y, Z], coronal [X, Z]
    or axial [X, Y]."""
    return np.ascontiguousarray(np.take(volume, index, axis)), np.take(brain, index, axis) > 0


def held_out_slices(volume: np.ndarray, brain: np.ndarray, plane: str, split: str = "test",
                    with_brain: bool = True) -> list[Sample]:
    """The ``split`` slices of one plane, whole: the slices along that axis that contain brain (or, with
    ``with_brain=False``, those that contain none), in blocks as ``brain_block_split``."""
    axis = PLANES[plane]
    return [brain_slice(volume, brain, axis, i) for i in brain_slice_split(brain, axis, with_brain)[split]]


def split_brain(volume: np.ndarray, brain: np.ndarray, planes: tuple[str, ...] = ("axial",), empty: bool = False,
                axial_repeat: int = 1) -> dict[str, list[Sample]]:
    """Slices of volume [X, Y, Z] and mask [X, Y, Z] (> 0 is brain), split by slice blocks (module docstring).

    Validation and test are always the axial split. ``planes`` adds the training-block slices of other planes
    (sagittal: blocks along X, coronal: along Y) to training, with every voxel of a validation or test axial
    slice blanked (image to the volume's minimum, mask to background), so no held-out voxel is ever trained
    on in any plane. ``empty``: add the training-block slices without brain of each plane too.
    ``axial_repeat``: list the axial training slices (with brain) this many times, so that batches, drawn
    uniformly from the list, sample the plane the model is validated and tested on more often than the others.
    """
    if volume.shape != brain.shape or volume.ndim != 3:
        raise ValueError(f"volume {volume.shape} and brain mask {brain.shape} must be the same 3-D shape")
    unknown = sorted(set(planes) - set(PLANES))
    if unknown or "axial" not in planes:
        raise ValueError(f"planes must include 'axial' and be among {sorted(PLANES)}, got {planes}")
    if isinstance(axial_repeat, bool) or not isinstance(axial_repeat, int) or axial_repeat < 1:
        raise ValueError(f"axial_repeat must be an integer >= 1, got {axial_repeat!r}")
    axial = brain_slice_split(brain, PLANES["axial"])
    empties = brain_slice_split(brain, PLANES["axial"], with_brain=False)
    splits = {split: [brain_slice(volume, brain, PLANES["axial"], z) for z in axial[split]] for split in SPLITS}
    splits["train"] *= axial_repeat
    if empty:
        splits["train"] += [brain_slice(volume, brain, PLANES["axial"], z) for z in empties["train"]]
    held_out = axial["val"] + axial["test"] + (empties["val"] + empties["test"] if empty else [])
    blank_volume, blank_brain = volume.copy(), brain > 0
    blank_volume[:, :, held_out], blank_brain[:, :, held_out] = volume.min(), False
    for plane in planes:
        if plane == "axial":
            continue
        axis = PLANES[plane]
        indices = brain_slice_split(brain, axis)["train"]
        indices += brain_slice_split(brain, axis, with_brain=False)["train"] if empty else []
        splits["train"] += [brain_slice(blank_volume, blank_brain, axis, i) for i in indices]
    return splits


def read_brain(root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(T1 volume [X, Y, Z], brain mask [X, Y, Z]) of mricron-data ch2 / ch2bet, as stored."""
    try:
        import nibabel
    except ImportError as exc:
        raise ImportError("the brain data set is NIfTI: pip install nibabel") from exc
    root = Path(root) if root is not None else default_data_dir()
    volume = np.asarray(nibabel.load(_require(root / "brain" / "ch2.nii.gz")).dataobj)
    brain = np.asarray(nibabel.load(_require(root / "brain" / "ch2bet.nii.gz")).dataobj)
    return volume, brain


def load_brain(root: str | os.PathLike | None = None, planes: tuple[str, ...] = ("axial",), empty: bool = False,
               axial_repeat: int = 1) -> dict[str, list[Sample]]:
    """The brain split (``split_brain``); ``planes``, ``empty`` and ``axial_repeat`` change the training set
    only."""
    return split_brain(*read_brain(root), planes, empty, axial_repeat)


DATASETS = {"nuclei": load_nuclei, "brain": load_brain}

# The architecture and normalisation each data set's model is trained with.
DATASET_CONFIGS = {"nuclei": ALNetConfig(in_channels=1, num_classes=1),
                   "brain": ALNetConfig(in_channels=1, num_classes=1, plane="axial")}  # slices [R, A] of RAS

# What each data set is, recorded in its models' checkpoints (alnet_fast.modality warns on other inputs).
DATASET_MODALITIES = {"nuclei": {"training_modality": "fluorescence microscopy", "training_dims": "2d"},
                      "brain": {"training_modality": "MR", "training_dims": "3d-slices"}}


def training_set_metadata(options: dict) -> dict[str, str]:
    """A brain model's training-set options (``load_brain``) as checkpoint metadata: which planes it learnt
    from, whether slices without brain, how often the axial slices were listed; {} for other data sets."""
    if "planes" not in options:
        return {}
    return {"planes": ",".join(options["planes"]), "empty_slices": str(options.get("empty", False)),
            "axial_repeat": str(options.get("axial_repeat", 1))}


def load_dataset(name: str, root: str | os.PathLike | None = None, **options) -> dict[str, list[Sample]]:
    """{"train", "val", "test"} -> samples of a named data set; ``options`` go to its loader (brain: planes,
    empty, axial_repeat)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](root, **options)


def bundled_sample(name: str = "nuclei") -> tuple[Path, Path]:
    """(image path, mask path) of a real held-out sample shipped in the package (alnet_fast/data/)."""
    image, mask = SAMPLE_DIR / f"{name}.tif", SAMPLE_DIR / f"{name}_mask.png"
    if not image.is_file() or not mask.is_file():
        names = sorted(p.stem for p in SAMPLE_DIR.glob("*.tif"))
        raise FileNotFoundError(f"no bundled sample {name!r}; bundled samples: {names}")
    return image, mask

"""Segmentation jobs: which files a run reads, what it writes for each, and segmenting a list of them.

One implementation for every way of running: ``alnet-fast segment`` in one process, each part of a
sharded run (``--num-parts K --part-id I``), and each worker of a Ray run (alnet_fast.distributed).

    jobs = plan_jobs(collect_inputs(["scans/"]), Path("masks"), overlay=False, probs=False)
    jobs = pending(select_part(jobs, num_parts=4, part_id=1))   # this machine's quarter, not done yet
    run = SegmentRun(segmenter, RunOptions(batch_size=4))
    run.segment_all(jobs)                                       # run.done, run.failed
"""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ImageReadError
from .dicom import DicomSeries, group_series, segment_series, write_segmentation
from .io import is_dicom, read_image, write_png, write_tiff
from .modality import mismatch
from .outputs import probs_to_mask
from .paths import (DICOM_SUFFIXES, NIFTI_SUFFIXES, PILLOW_SUFFIXES, TIFF_SUFFIXES, full_suffix, is_nifti,
                    strip_suffix)
from .wsi import is_large_tiff, segment_tiff

IMAGE_SUFFIXES = PILLOW_SUFFIXES + TIFF_SUFFIXES + DICOM_SUFFIXES + NIFTI_SUFFIXES
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                    (70, 240, 240), (240, 50, 230), (210, 245, 60)], dtype=np.float32)
OVERLAY_ALPHA = 0.45
MANIFEST_SUFFIX = ".txt"
# Failures of one input that must not stop the run (KeyboardInterrupt and programming errors still do).
INPUT_ERRORS = (ImageReadError, ValueError, TypeError, OSError, RuntimeError, MemoryError)


@dataclass
class Job:
    """One input (a file; for a DICOM series its first file), its name relative to the input it was found
    under, and the output paths it produces (mask first).

    kind: "image" (2-D, read whole), "large" (a TIFF streamed tile by tile), "volume" (NIfTI), "series"
    (DICOM files -> one SEG), or "unreadable" (``error`` says why; reported when the run reaches it).
    """

    source: Path
    name: Path
    outputs: list[Path] = field(default_factory=list)
    kind: str = "image"
    series: DicomSeries | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class RunOptions:
    """How each input is segmented and what is written for it (the ``segment`` command's flags of these names)."""

    batch_size: int = 4
    tile: int | None = None
    overlap: float = 0.25
    overlay: bool = False
    probs: bool = False
    axis: int | None = None
    window: bool = True
    tta: bool = False
    plane: str | None = None
    model_name: str = "alnet_fast"  # named in DICOM SEG files


# Inputs and outputs

def collect_inputs(inputs: list[str], exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(file, relative name) for every INPUT: a file as given, a manifest's files (``read_manifest``), a
    folder's image files (recursively, hidden files and anything under ``exclude`` left out), or the
    matches of a glob pattern."""
    found: list[tuple[Path, Path]] = []
    for text in inputs:
        path = Path(text)
        if path.is_file() and path.suffix == MANIFEST_SUFFIX:
            found.extend(read_manifest(path))
        elif path.is_file():
            found.append((path, Path(path.name)))
        elif path.is_dir():
            found.extend(_folder_images(path, exclude))
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches {text!r}")
            for match in map(Path, matches):
                found.extend(_folder_images(match, exclude) if match.is_dir() else [(match, Path(match.name))])
        else:
            raise FileNotFoundError(f"input {text!r} not found")
    if not found:
        inside = [p for text in inputs if Path(text).is_dir() for p, _ in _folder_images(Path(text), None)]
        why = (f": the {len(inside)} image file(s) there are inside the output folder {str(exclude)!r}, which is "
               "never read as input (it holds earlier outputs); write the outputs to another folder"
               if exclude is not None and inside else "")
        raise FileNotFoundError(f"no image files found in {inputs}{why}")
    return found


def read_manifest(manifest: Path) -> list[tuple[Path, Path]]:
    """(file, relative name) for each line of a manifest (a ``.txt`` file listing one image file per line;
    blank lines and lines starting with ``#`` are skipped). A relative line is found under the manifest's
    folder and keeps its relative path as its name (``p01/IM0001`` -> ``OUTDIR/p01/IM0001.png``); an
    absolute one is named by its file name. FileNotFoundError names the first missing file."""
    found = []
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        listed = Path(line)
        path = listed if listed.is_absolute() else manifest.parent / listed
        if not path.is_file():
            raise FileNotFoundError(f"{str(manifest)!r} line {number}: no file {str(path)!r}")
        found.append((path, Path(path.name) if listed.is_absolute() else listed))
    return found


def _folder_images(folder: Path, exclude: Path | None) -> list[tuple[Path, Path]]:
    exclude = exclude.resolve() if exclude is not None else None
    images = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude):
            continue
        if full_suffix(path) in IMAGE_SUFFIXES or (full_suffix(path) == "" and is_dicom(path)):
            images.append((path, rel))
    return images


def plan_jobs(found: list[tuple[Path, Path]], outdir: Path, overlay: bool, probs: bool,
              dicom_seg: bool = False) -> list[Job]:
    """Output paths for every input; ValueError when two inputs would write the same file.

    dicom_seg: DICOM files become one job per series (their headers are read here)."""
    jobs, owner = [], {}
    if dicom_seg:
        found, series_jobs = _series_jobs(found, outdir)
        jobs += series_jobs
    for source, rel in found:
        base, kind = outdir / strip_suffix(rel), "image"
        if is_nifti(source):
            kind = "volume"
            outputs = [base.with_name(base.name + ".nii.gz")]
            outputs += [_suffixed(base, "_overlay.png")] if overlay else []
            outputs += [_suffixed(base, "_probs.nii.gz")] if probs else []
        elif full_suffix(source) in TIFF_SUFFIXES and is_large_tiff(source):
            kind = "large"
            outputs = [base.with_name(base.name + ".tif")] + ([_suffixed(base, "_probs.tif")] if probs else [])
        else:
            outputs = [base.with_name(base.name + ".png")]
            outputs += [_suffixed(base, "_overlay.png")] if overlay else []
            outputs += [_suffixed(base, "_probs.tif")] if probs else []
        clash = owner.get(outputs[0])
        if clash is not None and clash != source:
            raise ValueError(f"inputs {str(clash)!r} and {str(source)!r} would both write {str(outputs[0])!r}; "
                             "segment them into different output folders")
        owner[outputs[0]] = source
        if clash is None:
            jobs.append(Job(source, rel, outputs, kind))
    return jobs


def _series_jobs(found: list[tuple[Path, Path]], outdir: Path) -> tuple[list[tuple[Path, Path]], list[Job]]:
    """(the non-DICOM inputs, one job per DICOM series and per unreadable DICOM file)."""
    dicom = [(p, rel) for p, rel in found if not is_nifti(p) and full_suffix(p) not in PILLOW_SUFFIXES + TIFF_SUFFIXES
             and is_dicom(p)]
    rels = dict(dicom)
    errors: list[tuple[Path, Exception]] = []
    jobs = [Job(s.paths[0], rels[s.paths[0]], [outdir / rels[s.paths[0]].parent / f"{s.uid}_seg.dcm"], "series", s)
            for s in group_series([p for p, _ in dicom], errors)]
    jobs += [Job(path, rels[path], [], "unreadable", error=exc) for path, exc in errors]
    return [item for item in found if item[0] not in rels], jobs


def _suffixed(base: Path, suffix: str) -> Path:
    return base.with_name(base.name + suffix)


def select_part(jobs: list[Job], num_parts: int, part_id: int) -> list[Job]:
    """Part ``part_id`` of ``num_parts``: every num_parts-th job of the list sorted by relative name, from the
    part_id-th on. The parts are disjoint and cover the list, and the same listing gives the same parts on
    every machine (the order does not depend on where the inputs are mounted)."""
    if num_parts < 1:
        raise ValueError(f"the number of parts must be >= 1, got {num_parts}")
    if not 0 <= part_id < num_parts:
        raise ValueError(f"the part id must be in [0, {num_parts - 1}] for {num_parts} parts, got {part_id}")
    ordered = sorted(jobs, key=lambda job: (job.name.as_posix(), str(job.source)))
    return ordered[part_id::num_parts]


def pending(jobs: list[Job]) -> list[Job]:
    """The jobs whose outputs do not all exist yet (a resumed run skips the others)."""
    return [job for job in jobs if not all(path.is_file() for path in job.outputs)]


def render_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mask's labels > 0 blended in colour over the image, robustly scaled to 8 bits.

    image: [H, W] or [H, W, C] any dtype; mask: uint8 [H, W] -> uint8 [H, W, 3].
    """
    rgb = image.astype(np.float32)
    if rgb.ndim == 3 and rgb.shape[-1] in (2, 4):
        rgb = rgb[..., :-1]
    if rgb.ndim == 2 or rgb.shape[-1] == 1:
        rgb = np.repeat(rgb.reshape(*rgb.shape[:2], 1), 3, axis=-1)
    lo, hi = np.percentile(rgb, (0.5, 99.5))
    rgb = np.clip((rgb - lo) / max(hi - lo, 1e-12), 0.0, 1.0) * 255.0
    labelled = mask > 0
    colours = PALETTE[(mask[labelled].astype(np.int64) - 1) % len(PALETTE)]
    rgb[labelled] = (1 - OVERLAY_ALPHA) * rgb[labelled] + OVERLAY_ALPHA * colours
    return np.round(rgb).astype(np.uint8)


def middle_slice_overlay(volume: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """render_overlay of the middle slice along ``axis``. volume: [X, Y, Z] (or [X, Y, Z, 1]); mask: uint8
    [X, Y, Z] -> uint8 [h, w, 3] in voxel order."""
    middle = mask.shape[axis] // 2
    return render_overlay(np.take(volume.reshape(mask.shape), middle, axis), np.take(mask, middle, axis))


# The run

class SegmentRun:
    """Segments jobs with one Segmenter, recording what was done and what failed (with the reason).

    progress: a tqdm-like bar (``update(n)``, ``write(text, file=...)``) told of each finished input and
    each failure, or None. training: the model's recorded training data (``modality.training_data``) and
    model: its name; with a progress bar, an input unlike that data gets one warning line per kind.
    """

    def __init__(self, segmenter, options: RunOptions, progress=None, training: dict[str, str] | None = None,
                 model: str = ""):
        self.segmenter, self.options, self.progress = segmenter, options, progress
        self.training, self.model = training or {}, model
        self.done: list[Job] = []
        self.failed: list[tuple[Job, str]] = []  # (job, why)
        self.warned: set[str] = set()

    def check_modality(self, job: Job) -> None:
        """One warning line per kind of input that differs from the model's recorded training data."""
        reason = mismatch(job.source, self.training) if self.progress is not None else None
        if reason is not None and reason not in self.warned:
            self.warned.add(reason)
            self.progress.write(f"alnet-fast segment: warning: {str(job.source)!r} (and any like it) is {reason} "
                                f"(--model {self.model}); its masks may be meaningless", file=sys.stderr)

    def fail(self, job: Job, exc: BaseException) -> None:
        self.failed.append((job, f"{type(exc).__name__}: {exc}"))
        if self.progress is not None:
            where = "" if str(job.source) in str(exc) else f" {str(job.source)!r}"
            self.progress.write(f"alnet-fast segment: failed{where}: {exc}", file=sys.stderr)
            self.progress.update(1)

    def images(self, jobs: list[Job]) -> None:
        """2-D inputs, read and segmented together (one batch); an input that fails is redone alone."""
        loaded = []
        for job in jobs:
            self.check_modality(job)
            try:
                loaded.append((job, read_image(job.source, window=self.options.window)))
            except INPUT_ERRORS as exc:
                self.fail(job, exc)
        if not loaded:
            return
        try:
            probs = self.segmenter.predict([image for _, image in loaded], tile=self.options.tile,
                                           overlap=self.options.overlap, tta=self.options.tta)
        except INPUT_ERRORS as exc:
            if len(loaded) == 1:
                self.fail(loaded[0][0], exc)
            else:  # find which input(s) failed: redo each alone
                for job, _ in loaded:
                    self.images([job])
            return
        for (job, image), p in zip(loaded, probs):
            try:
                self.write_image(job, image, p)
            except INPUT_ERRORS as exc:
                self.fail(job, exc)

    def write_image(self, job: Job, image: np.ndarray, probs: np.ndarray) -> None:
        mask = probs_to_mask(probs, self.segmenter.config.num_classes)
        extra = iter(job.outputs[1:])
        if self.options.overlay:
            write_png(next(extra), render_overlay(image, mask))
        if self.options.probs:
            write_tiff(next(extra), probs.astype(np.float32))
        write_png(job.outputs[0], mask)  # last: a mask on disk means this input is complete
        self.succeed(job)

    def alone(self, job: Job, work) -> None:
        """Run ``work(job)`` for an input segmented on its own; its failure is recorded and the run goes on."""
        self.check_modality(job)
        try:
            work(job)
        except INPUT_ERRORS as exc:
            self.fail(job, exc)
            return
        self.succeed(job)

    def volume(self, job: Job) -> None:
        from .volumes import segment_nifti, write_nifti_like

        options = self.options
        result = segment_nifti(self.segmenter, job.source, options.axis, options.tile, options.overlap,
                               plane=options.plane)
        extra = iter(job.outputs[1:])
        if options.overlay:
            write_png(next(extra), middle_slice_overlay(np.asarray(result.image.dataobj), result.mask,
                                                        2 if options.axis is None else options.axis))
        if options.probs:
            write_nifti_like(next(extra), result.probs.astype(np.float32), result.image)
        write_nifti_like(job.outputs[0], result.mask, result.image)

    def large(self, job: Job) -> None:
        """A TIFF too large to read whole: streamed tile by tile (default tiles of 512) to tiled OME-TIFFs."""
        segment_tiff(self.segmenter, job.source, job.outputs[0], job.outputs[1] if self.options.probs else None,
                     tile=self.options.tile or 512, overlap=self.options.overlap)

    def series(self, job: Job) -> None:
        """A DICOM series: every slice segmented, one SEG written (FRACTIONAL with probs)."""
        probs = segment_series(self.segmenter, job.series, self.options.window, self.options.tile,
                               self.options.overlap)
        write_segmentation(job.outputs[0], job.series, probs, self.segmenter.config.num_classes,
                           self.options.model_name, fractional=self.options.probs)

    @staticmethod
    def unreadable(job: Job) -> None:
        raise job.error

    def succeed(self, job: Job) -> None:
        self.done.append(job)
        if self.progress is not None:
            self.progress.update(1)

    def segment_all(self, jobs: list[Job]) -> None:
        pending_images: list[Job] = []
        one_by_one = {"volume": self.volume, "large": self.large, "series": self.series,
                      "unreadable": self.unreadable}
        for job in jobs:
            if job.kind in one_by_one:
                self.alone(job, one_by_one[job.kind])
                continue
            pending_images.append(job)
            if len(pending_images) == self.options.batch_size:
                self.images(pending_images)
                pending_images = []
        if pending_images:
            self.images(pending_images)

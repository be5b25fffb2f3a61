"""``alnet-fast segment INPUT... -o OUTDIR``: masks for files, folders and globs of images and volumes.

Per input (relative name REL, its suffix removed), under OUTDIR:
  REL.png            uint8 label mask (0/1 for one class, 0..K-1 otherwise) for a 2-D image or DICOM slice
  REL.tif            the same as a tiled OME-TIFF for a TIFF of more than wsi.STREAM_PIXELS pixels (streamed)
  REL.nii.gz         uint8 label volume for a NIfTI input (same affine and header)
  DIR/UID_seg.dcm    --dicom-seg: one DICOM SEG per series (UID) of the DICOM files, DIR the first file's folder
  REL_overlay.png    --overlay: the mask drawn over the image (2-D inputs read whole)
  REL_probs.tif      --probs: float32 probabilities [H, W] or [K, H, W] (REL_probs.nii.gz for volumes,
                     [H, W, K] for streamed TIFFs; with --dicom-seg the SEG holds them, FRACTIONAL)
Every file is written atomically; --skip-existing skips inputs whose outputs all exist (a resumed run).
An input that cannot be read or segmented is reported with its path and the run goes on; the exit
code is then 1. User errors (no such input, unknown model or backend) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import PLANES
from ..dicom import DicomSeries, group_series, segment_series, write_segmentation
from ..errors import ImageReadError
from ..io import is_dicom, read_image, write_png, write_tiff
from ..paths import (DICOM_SUFFIXES, NIFTI_SUFFIXES, PILLOW_SUFFIXES, TIFF_SUFFIXES, full_suffix, is_nifti,
                     strip_suffix)
from ..outputs import probs_to_mask
from ..wsi import is_large_tiff, segment_tiff
from .common import DTYPES, add_model_argument, load_segmenter, positive_int

IMAGE_SUFFIXES = PILLOW_SUFFIXES + TIFF_SUFFIXES + DICOM_SUFFIXES + NIFTI_SUFFIXES
PALETTE = np.array([(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                    (70, 240, 240), (240, 50, 230), (210, 245, 60)], dtype=np.float32)
OVERLAY_ALPHA = 0.45
# Failures of one input that must not stop the run (KeyboardInterrupt and programming errors still do).
INPUT_ERRORS = (ImageReadError, ValueError, TypeError, OSError, RuntimeError, MemoryError)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "segment", help="segment images, DICOM slices and NIfTI volumes",
        description="Segment image files (PNG/JPEG/TIFF 8/16-bit), DICOM slices (.dcm, or series folders) "
                    "and NIfTI volumes (.nii/.nii.gz, slice-wise). INPUT: files, folders (searched "
                    "recursively) or glob patterns.")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or glob patterns")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    add_model_argument(parser)
    parser.add_argument("--backend", default="auto", help="auto, torch, triton or native (default: auto)")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="compute dtype")
    parser.add_argument("--batch-size", type=positive_int, default=4, metavar="N",
                        help="images (or tiles) per forward pass (default: 4)")
    parser.add_argument("--tile", type=positive_int, default=None, metavar="PX",
                        help="segment in overlapping PX x PX tiles (a multiple of 32, e.g. 512) for large images")
    parser.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default: 0.25)")
    parser.add_argument("--overlay", action="store_true", help="also write REL_overlay.png (2-D inputs)")
    parser.add_argument("--probs", action="store_true", help="also write probabilities (REL_probs.tif / .nii.gz)")
    parser.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs all exist")
    parser.add_argument("--axis", type=int, default=None, choices=(0, 1, 2),
                        help="NIfTI volumes: slice along this voxel axis as stored, whatever the orientation "
                             "(default: the model's plane, see --plane; axis 2 for models that record none)")
    parser.add_argument("--dicom-seg", action="store_true",
                        help="DICOM: group the files into series and write one DICOM SEG per series "
                             "(FRACTIONAL with --probs) instead of PNG masks")
    parser.add_argument("--plane", choices=PLANES, default=None,
                        help="NIfTI volumes: slice in this anatomical plane, whatever the voxel order "
                             "(default: the plane the model was trained on, if its checkpoint records one)")
    parser.add_argument("--no-window", action="store_true",
                        help="DICOM: do not apply the file's VOI window (use the rescaled modality values)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


@dataclass
class Job:
    """One input (a file; for a DICOM series its first file) and the output paths it produces (mask first).

    kind: "image" (2-D, read whole), "large" (a TIFF streamed tile by tile), "volume" (NIfTI), "series"
    (DICOM files -> one SEG), or "unreadable" (``error`` says why; reported when the run reaches it).
    """

    source: Path
    outputs: list[Path] = field(default_factory=list)
    kind: str = "image"
    series: DicomSeries | None = None
    error: Exception | None = None


# Inputs and outputs

def collect_inputs(inputs: list[str], exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """(file, relative name) for every INPUT: a file as given, a folder's image files (recursively, hidden
    files and anything under ``exclude`` left out), or the matches of a glob pattern."""
    found: list[tuple[Path, Path]] = []
    for text in inputs:
        path = Path(text)
        if path.is_file():
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
        raise FileNotFoundError(f"no image files found in {inputs}")
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
            outputs = [base.with_name(base.name + ".nii.gz")] + ([_suffixed(base, "_probs.nii.gz")] if probs else [])
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
            jobs.append(Job(source, outputs, kind))
    return jobs


def _series_jobs(found: list[tuple[Path, Path]], outdir: Path) -> tuple[list[tuple[Path, Path]], list[Job]]:
    """(the non-DICOM inputs, one job per DICOM series and per unreadable DICOM file)."""
    dicom = [(p, rel) for p, rel in found if not is_nifti(p) and full_suffix(p) not in PILLOW_SUFFIXES + TIFF_SUFFIXES
             and is_dicom(p)]
    rels = dict(dicom)
    errors: list[tuple[Path, Exception]] = []
    jobs = [Job(s.paths[0], [outdir / rels[s.paths[0]].parent / f"{s.uid}_seg.dcm"], "series", s)
            for s in group_series([p for p, _ in dicom], errors)]
    jobs += [Job(path, [], "unreadable", error=exc) for path, exc in errors]
    return [item for item in found if item[0] not in rels], jobs


def _suffixed(base: Path, suffix: str) -> Path:
    return base.with_name(base.name + suffix)


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


# The run

class SegmentRun:
    """Segments jobs with one Segmenter, counting successes and failures; reports through a progress bar."""

    def __init__(self, segmenter, args: argparse.Namespace, bar):
        self.segmenter, self.args, self.bar = segmenter, args, bar
        self.done, self.failed = 0, []

    def fail(self, job: Job, exc: BaseException) -> None:
        self.failed.append(job.source)
        where = "" if str(job.source) in str(exc) else f" {str(job.source)!r}"
        self.bar.write(f"alnet-fast segment: failed{where}: {exc}", file=sys.stderr)
        self.bar.update(1)

    def images(self, jobs: list[Job]) -> None:
        """2-D inputs, read and segmented together (one batch); an input that fails is redone alone."""
        loaded = []
        for job in jobs:
            try:
                loaded.append((job, read_image(job.source, window=not self.args.no_window)))
            except INPUT_ERRORS as exc:
                self.fail(job, exc)
        if not loaded:
            return
        try:
            probs = self.segmenter.predict([image for _, image in loaded], tile=self.args.tile,
                                           overlap=self.args.overlap)
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
        if self.args.overlay:
            write_png(next(extra), render_overlay(image, mask))
        if self.args.probs:
            write_tiff(next(extra), probs.astype(np.float32))
        write_png(job.outputs[0], mask)  # last: a mask on disk means this input is complete
        self.succeed()

    def alone(self, job: Job, work) -> None:
        """Run ``work(job)`` for an input segmented on its own; its failure is recorded and the run goes on."""
        try:
            work(job)
        except INPUT_ERRORS as exc:
            self.fail(job, exc)
            return
        self.succeed()

    def volume(self, job: Job) -> None:
        from ..volumes import segment_nifti, write_nifti_like

        result = segment_nifti(self.segmenter, job.source, self.args.axis, self.args.tile, self.args.overlap,
                               plane=self.args.plane)
        if self.args.probs:
            write_nifti_like(job.outputs[1], result.probs.astype(np.float32), result.image)
        write_nifti_like(job.outputs[0], result.mask, result.image)

    def large(self, job: Job) -> None:
        """A TIFF too large to read whole: streamed tile by tile (default tiles of 512) to tiled OME-TIFFs."""
        segment_tiff(self.segmenter, job.source, job.outputs[0], job.outputs[1] if self.args.probs else None,
                     tile=self.args.tile or 512, overlap=self.args.overlap)

    def series(self, job: Job) -> None:
        """A DICOM series: every slice segmented, one SEG written (FRACTIONAL with --probs)."""
        probs = segment_series(self.segmenter, job.series, not self.args.no_window, self.args.tile,
                               self.args.overlap)
        write_segmentation(job.outputs[0], job.series, probs, self.segmenter.config.num_classes,
                           strip_suffix(Path(self.args.model).name).name, fractional=self.args.probs)

    @staticmethod
    def unreadable(job: Job) -> None:
        raise job.error

    def succeed(self) -> None:
        self.done += 1
        self.bar.update(1)

    def segment_all(self, jobs: list[Job]) -> None:
        pending: list[Job] = []
        one_by_one = {"volume": self.volume, "large": self.large, "series": self.series,
                      "unreadable": self.unreadable}
        for job in jobs:
            if job.kind in one_by_one:
                self.alone(job, one_by_one[job.kind])
                continue
            pending.append(job)
            if len(pending) == self.args.batch_size:
                self.images(pending)
                pending = []
        if pending:
            self.images(pending)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..tiling import check_tile

    if args.tile is not None:
        check_tile(args.tile)
    if not 0.0 <= args.overlap < 1.0:
        raise ValueError(f"--overlap must be in [0, 1), got {args.overlap}")
    if args.output.exists() and not args.output.is_dir():
        raise ValueError(f"output {str(args.output)!r} exists and is not a folder")
    jobs = plan_jobs(collect_inputs(args.inputs, exclude=args.output), args.output, args.overlay, args.probs,
                     args.dicom_seg)
    todo = [job for job in jobs if not (args.skip_existing and all(p.is_file() for p in job.outputs))]
    segmenter = load_segmenter(args)
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="segment", disable=args.quiet or None, file=sys.stderr,
              dynamic_ncols=True) as bar:
        session = SegmentRun(segmenter, args, bar)
        session.segment_all(todo)
    elapsed = time.perf_counter() - start
    rate = session.done / elapsed if elapsed > 0 else 0.0
    print(f"alnet-fast segment: {session.done} segmented, {len(jobs) - len(todo)} skipped (outputs exist), "
          f"{len(session.failed)} failed; {elapsed:.1f} s, {rate:.2f} images/s; outputs in {str(args.output)!r}")
    if session.failed:
        print(f"alnet-fast segment: {len(session.failed)} input(s) failed: "
              + ", ".join(repr(str(p)) for p in session.failed), file=sys.stderr)
        return 1
    return 0

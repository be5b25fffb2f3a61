"""``alnet-fast segment INPUT... -o OUTDIR``: masks for files, folders and globs of images and volumes.

Per input (relative name REL, its suffix removed), under OUTDIR:
  REL.png            uint8 label mask (0/1 for one class, 0..K-1 otherwise) for a 2-D image or DICOM slice
  REL.tif            the same as a tiled OME-TIFF for a TIFF of more than wsi.STREAM_PIXELS pixels (streamed)
  REL.nii.gz         uint8 label volume for a NIfTI input (same affine and header)
  DIR/UID_seg.dcm    --dicom-seg: one DICOM SEG per series (UID) of the DICOM files, DIR the first file's folder
  REL_overlay.png    --overlay: the mask drawn over the image (2-D inputs read whole; for a volume, its middle
                     slice along --axis, 2 by default)
  REL_probs.tif      --probs: float32 probabilities [H, W] or [K, H, W] (REL_probs.nii.gz for volumes,
                     [H, W, K] for streamed TIFFs; with --dicom-seg the SEG holds them, FRACTIONAL)
Every file is written atomically; --skip-existing skips inputs whose outputs all exist (a resumed run).
An input unlike the model's recorded training data (a CT DICOM for an MR model, a NIfTI volume for a 2-D
model) is segmented with a one-line warning (alnet_fast.modality).
--num-parts K --part-id I segments one part of the sorted inputs (K jobs split a folder without a
coordinator); --ray [ADDRESS] --workers N runs on Ray Data (alnet_fast.distributed); see docs/distributed.md.
An input that cannot be read or segmented is reported with its path and the run goes on; the exit
code is then 1. User errors (no such input, unknown model or backend) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import PLANES
from ..jobs import RunOptions, SegmentRun, collect_inputs, pending, plan_jobs, select_part
from ..modality import training_data
from ..paths import strip_suffix
from ..threads import set_threads
from .common import (DTYPES, add_model_argument, load_arguments, load_segmenter, positive_int,
                     require_model)


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
    parser.add_argument("--dtype", default="auto", choices=list(DTYPES),
                        help="compute dtype; auto: float16 on CUDA (tensor cores), float32 on CPU (default: auto)")
    parser.add_argument("--batch-size", type=positive_int, default=4, metavar="N",
                        help="images (or tiles) per forward pass (default: 4)")
    parser.add_argument("--tile", type=positive_int, default=None, metavar="PX",
                        help="segment in overlapping PX x PX tiles (a multiple of 32, e.g. 512) for large images")
    parser.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default: 0.25)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average the probabilities over flips (and transposes of "
                             "square images), run as one batch; about 4-8x the compute (2-D inputs)")
    parser.add_argument("--overlay", action="store_true",
                        help="also write REL_overlay.png (volumes: the middle slice along --axis)")
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
    scale = parser.add_argument_group("scaling out (docs/distributed.md)")
    scale.add_argument("--threads", type=positive_int, default=None, metavar="T",
                       help="CPU threads for the kernels (torch and OpenMP); with --ray, per worker")
    scale.add_argument("--num-parts", type=positive_int, default=1, metavar="K",
                       help="split the sorted inputs into K parts and segment only one (--part-id)")
    scale.add_argument("--part-id", type=int, default=0, metavar="I", help="the part to segment, 0..K-1 (default: 0)")
    scale.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="segment on Ray Data: a new local Ray instance, or the cluster at ADDRESS "
                            "(host:port, ray://host:port or auto); needs the distributed extra")
    scale.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="--ray: segmenting actors, each loading the model once (default: 1)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..tiling import check_tile

    if args.tile is not None:
        check_tile(args.tile)
    if not 0.0 <= args.overlap < 1.0:
        raise ValueError(f"--overlap must be in [0, 1), got {args.overlap}")
    if args.output.exists() and not args.output.is_dir():
        raise ValueError(f"output {str(args.output)!r} exists and is not a folder")
    if args.workers is not None and args.ray is None:
        raise ValueError("--workers needs --ray (without Ray, run --num-parts K --part-id I jobs side by side)")
    if args.dicom_seg and args.ray is not None:
        raise ValueError("--dicom-seg runs in one process (each series is one job): drop --ray, or shard the "
                         "series folders with --num-parts K --part-id I")
    jobs = plan_jobs(collect_inputs(args.inputs, exclude=args.output), args.output, args.overlay, args.probs,
                     args.dicom_seg)
    jobs = select_part(jobs, args.num_parts, args.part_id)
    todo = pending(jobs) if args.skip_existing else jobs
    if args.tta and (args.tile is not None or any(job.kind != "image" for job in todo)):
        raise ValueError("--tta works on whole 2-D images: drop --tile, and segment volumes, DICOM series and "
                         "streamed TIFFs without --tta")
    options = RunOptions(args.batch_size, args.tile, args.overlap, args.overlay, args.probs, args.axis,
                         not args.no_window, args.tta, args.plane, strip_suffix(Path(args.model).name).name)
    if args.ray is None:
        if args.threads is not None:
            set_threads(args.threads)
        segmenter = load_segmenter(args)
    else:
        require_model(args.model)
    start = time.perf_counter()
    with tqdm(total=len(todo), unit="img", desc="segment", disable=args.quiet or None, file=sys.stderr,
              dynamic_ncols=True) as bar:
        if args.ray is None:
            session = SegmentRun(segmenter, options, bar, training_data(args.model), args.model)
            session.segment_all(todo)
            done, failed = session.done, session.failed
        else:
            from ..distributed import segment_on_ray

            done, failed = segment_on_ray(todo, load_arguments(args), options, address=args.ray,
                                          workers=args.workers or 1, threads=args.threads, progress=bar)
    elapsed = time.perf_counter() - start
    rate = len(done) / elapsed if elapsed > 0 else 0.0
    print(f"alnet-fast segment: {len(done)} segmented, {len(jobs) - len(todo)} skipped (outputs exist), "
          f"{len(failed)} failed; {elapsed:.1f} s, {rate:.2f} images/s; outputs in {str(args.output)!r}")
    if failed:
        print(f"alnet-fast segment: {len(failed)} input(s) failed: "
              + ", ".join(repr(str(job.source)) for job, _ in failed), file=sys.stderr)
        return 1
    return 0

"""Segment a large set of images on Ray Data: one model per worker actor, outputs written by the workers.

    from alnet_fast.distributed import segment_dataset
    summary = segment_dataset(["scans/"], "masks", model="nuclei", num_workers=2)
    summary.done, summary.skipped, summary.failed          # failed: [(input, reason)]

The pipeline: the driver lists the inputs and plans their outputs (alnet_fast.jobs, as the CLI does) and
leaves out those already done; ``ray.data.from_items`` holds one row per input; ``map_batches`` runs
``SegmentWorker``, a stateful class in an actor pool, so each actor loads the model once and keeps its
backend's buffers (the native plan's) from batch to batch; each actor reads its inputs with our readers,
segments them and writes every output atomically (alnet_fast.atomic), the mask last; the driver gathers one
status row per input. A worker that dies mid-batch (killed, out of memory) is restarted and its batch run
again (``max_restarts``, ``max_task_retries``): rewriting an output replaces it whole with the same bytes.
A bad input is a ``failed`` row with its reason, never the end of the run. Needs the ``distributed`` extra.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .api import as_dtype
from .checkpoint import require_model
from .jobs import Job, RunOptions, SegmentRun, collect_inputs, pending, plan_jobs, select_part

# How often one batch is tried again after its worker died; a batch that kills its worker every time (an
# input that crashes the process) is then given up, and its inputs are reported failed, without ending the run.
BATCH_RETRIES = 3
# Inputs per Ray task (one map_batches call on an actor; the model still runs --batch-size images at a time):
# each task costs Ray a round trip through the driver, its scheduler and object store, so tasks hold up to
# TASK_INPUTS inputs, but no more than leaves each worker MIN_TASKS_PER_WORKER tasks to balance the load. A task
# is also what a dead worker's retry redoes.
TASK_INPUTS = 16
MIN_TASKS_PER_WORKER = 4
# The input dataset has one block per task, up to this many (then several tasks a block): each block is one
# object in Ray's store.
MAX_BLOCKS = 10_000
ADDRESS = re.compile(r"^(local|auto|(ray://)?[\w.\-]+:\d+)$")
LOST = (f"its worker died {BATCH_RETRIES + 1} times on its batch (a crash on one of the batch's inputs, "
        "or out of memory); rerun with --skip-existing to retry")


@dataclass
class Summary:
    """What a run did with each input: segmented, skipped (its outputs existed), or failed with the reason."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.done) / self.seconds if self.seconds > 0 else 0.0


class SegmentWorker:
    """The map_batches class: one per Ray actor, holding a loaded Segmenter for every batch it is given.

    A batch: {"source", "name", "outputs" (lists of paths), "kind" (Job.kind)}: [N] each
    -> {"mask", "status", "reason"}: [N],
    mask: the input's first output (its key), status "done" or "failed", reason: the error's type and message.
    """

    def __init__(self, load_arguments: dict, options: RunOptions, threads: int):
        from .api import load

        self.options, self.threads = options, threads
        self.segmenter = load(**load_arguments)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        from .threads import set_threads

        set_threads(self.threads)  # OpenMP's count is per calling thread, and Ray runs batches in threads of its own
        jobs = [Job(Path(source), Path(name), [Path(p) for p in outputs], kind)
                for source, name, outputs, kind in zip(batch["source"], batch["name"], batch["outputs"],
                                                       batch["kind"])]
        run = SegmentRun(self.segmenter, self.options)
        run.segment_all(jobs)
        rows = [(str(job.outputs[0]), "done", "") for job in run.done]
        rows += [(str(job.outputs[0]), "failed", reason) for job, reason in run.failed]
        return {column: np.array(values, dtype=object) for column, values in zip(("mask", "status", "reason"),
                                                                                  zip(*rows))}


def segment_dataset(inputs: list[str] | str | os.PathLike, out_dir: str | os.PathLike, *, model: str = "nuclei",
                    num_workers: int = 1, batch_size: int = 4, backend: str = "auto", device: str | None = None,
                    dtype: str = "auto", threads: int | None = None, address: str | None = None,
                    skip_existing: bool = True, num_parts: int = 1, part_id: int = 0, **options) -> Summary:
    """Segment ``inputs`` (files, folders, globs, or a ``.txt`` manifest of files) into ``out_dir`` on Ray.

    The outputs are those of ``alnet-fast segment`` (docs/cli.md), byte for byte. address: None starts a
    local Ray instance for this call (or uses the one this process has already started); "auto" or
    "host:port" joins a running cluster, whose workers must see the same paths. num_workers: actors, each
    loading the model once; threads: CPU threads per actor (default: the CPUs divided among the actors).
    skip_existing: leave out inputs whose outputs all exist (resume). num_parts/part_id: only that part of
    the sorted inputs. options: RunOptions' fields other than batch_size (tile, overlap, overlay, probs,
    axis, window).
    """
    torch_dtype = as_dtype(dtype)  # a bad name fails here, before Ray starts
    options = RunOptions(batch_size=batch_size, **options)
    out_dir = Path(out_dir)
    inputs = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(i) for i in inputs]
    jobs = select_part(plan_jobs(collect_inputs(inputs, exclude=out_dir), out_dir, options.overlay, options.probs),
                       num_parts, part_id)
    todo = pending(jobs) if skip_existing else jobs
    require_model(model)
    start = time.perf_counter()
    done, failed = segment_on_ray(todo, dict(source=model, backend=backend, device=device, dtype=torch_dtype,
                                             batch_size=batch_size), options, address=address,
                                  workers=num_workers, threads=threads)
    segmented = {id(job) for job in todo}
    skipped = [job.source for job in jobs if id(job) not in segmented]
    return Summary([job.source for job in done], skipped, [(job.source, reason) for job, reason in failed],
                   time.perf_counter() - start)


def segment_on_ray(jobs: list[Job], load_arguments: dict, options: RunOptions, *, address: str | None = None,
                   workers: int = 1, threads: int | None = None,
                   progress=None) -> tuple[list[Job], list[tuple[Job, str]]]:
    """Segment ``jobs`` on a pool of ``workers`` SegmentWorker actors; (jobs done, [(job, reason)] failed).

    load_arguments: alnet_fast.load's keyword arguments, used once by each actor. progress: a tqdm-like bar
    updated as results come back. Joins or starts Ray as ``segment_dataset`` says; shuts down only what it
    started itself.
    """
    for name, count in (("workers", workers), ("threads", 1 if threads is None else threads)):
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"the number of {name} must be a positive int, got {count!r}")
    if address is not None and not ADDRESS.match(address):
        raise ValueError(f"Ray address {address!r} is not host:port, ray://host:port, auto or local "
                         "(on the command line, put --ray after the inputs or write --ray=ADDRESS)")
    if not jobs:
        return [], []
    ray = _import_ray()
    started = _connect(ray, address, workers, threads)
    try:
        threads = threads or _default_threads(ray, workers)
        rows = _status_rows(ray, jobs, load_arguments, options, workers, threads)
        try:
            return _gather(rows, jobs, progress)
        except ray.exceptions.RayError as exc:  # e.g. no actor could load the model: one line, not Ray's traceback
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise RuntimeError(f"the Ray run failed: {lines[-1] if lines else type(exc).__name__}") from exc
    finally:
        if started:
            ray.shutdown()


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the data library's own dependencies: pandas, pyarrow)
    except ImportError as exc:
        raise ImportError(f"Ray Data is not installed ({exc}); install the extra: pip install 'alnet_fast[distributed]'"
                          ) from None
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """``ray.init`` a new local instance on 127.0.0.1 (address None or "local", with ``num_cpus``) or join the
    cluster at ``address``, so that workers import the alnet_fast this process imported.

    Ray puts the driver's current directory first on every worker's ``sys.path``: run from a source checkout,
    workers would import its unbuilt ``alnet_fast/`` instead of the installed package. So Ray is started from
    the folder that holds the package this process imported (site-packages, or the checkout of an editable
    install), which then comes first instead.
    """
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    here = os.getcwd()
    os.chdir(Path(__file__).resolve().parent.parent)
    try:
        if address in (None, "local"):
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     logging_level="WARNING")
        else:
            try:
                ray.init(address=address, logging_level="WARNING")
            except ConnectionError as exc:
                raise ConnectionError(f"cannot join the Ray cluster at {address!r}: {exc}") from None
    finally:
        os.chdir(here)


def _connect(ray, address: str | None, workers: int, threads: int | None) -> bool:
    """Start or join Ray unless this process already has; True when the caller must shut it down."""
    if ray.is_initialized():
        return False
    init_ray(address, workers * threads if threads else max(os.cpu_count() or 1, workers))
    return True


def _default_threads(ray, workers: int) -> int:
    """The cluster's CPUs shared among the workers, no more than the largest node has."""
    nodes = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]]
    total = sum(nodes) or 1
    return max(1, min(int(total) // workers, int(max(nodes, default=1))))


def task_size(inputs: int, workers: int, batch_size: int) -> int:
    """Inputs per Ray task: up to TASK_INPUTS, down to MIN_TASKS_PER_WORKER tasks a worker, at least a batch."""
    return max(batch_size, min(TASK_INPUTS, math.ceil(inputs / (MIN_TASKS_PER_WORKER * workers))))


def _status_rows(ray, jobs: list[Job], load_arguments: dict, options: RunOptions, workers: int, threads: int):
    """The dataset of status rows: inputs -> SegmentWorker actors (lazy; iterating it runs the pipeline)."""
    items = [{"source": str(job.source), "name": job.name.as_posix(), "outputs": [str(p) for p in job.outputs],
              "kind": job.kind} for job in jobs]
    task_inputs = task_size(len(items), workers, options.batch_size)
    blocks = min(math.ceil(len(items) / task_inputs), MAX_BLOCKS)
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    dataset.context.max_errored_blocks = -1  # a batch given up after BATCH_RETRIES is reported, not fatal
    dataset.context.enable_progress_bars = False  # the caller's bar counts inputs
    with warnings.catch_warnings():
        # Ray 2.60 warns that the actor options below move elsewhere in 2.64 and offers no other way to bound
        # the retries (its default retries a batch forever, and one input that crashes its worker hangs the run).
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return dataset.map_batches(
            SegmentWorker, fn_constructor_kwargs=dict(load_arguments=load_arguments, options=options, threads=threads),
            batch_size=task_inputs, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads, max_restarts=-1, max_task_retries=BATCH_RETRIES)


def _gather(rows, jobs: list[Job], progress) -> tuple[list[Job], list[tuple[Job, str]]]:
    """Collect the status rows; a job with no row (its batch was given up) is failed with LOST."""
    status: dict[str, tuple[str, str]] = {}
    for batch in rows.iter_batches(batch_size=None, batch_format="numpy"):
        for mask, state, reason in zip(batch["mask"], batch["status"], batch["reason"]):
            status[str(mask)] = (str(state), str(reason))
        if progress is not None:
            progress.update(len(batch["mask"]))
    done, failed = [], []
    for job in jobs:
        state, reason = status.get(str(job.outputs[0]), ("failed", LOST))
        if state == "done":
            done.append(job)
        else:
            failed.append((job, reason))
            if progress is not None:
                progress.write(f"alnet-fast segment: failed {str(job.source)!r}: {reason}", file=sys.stderr)
    return done, failed

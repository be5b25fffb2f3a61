"""Scale-out overhead: images/s of one process against Ray Data with 1 and 2 SegmentWorker actors.

The same 64 images of 512 x 512 (the bundled nuclei sample, mirrored to 512 x 512 and rolled so that no
two are equal), the bundled ``nuclei`` model, native backend, batch size 4, on a local Ray instance with
every CPU of this machine (started once, outside the timings). Each entry reports, in extra_info:

- ``steady_images_per_s``: images after the first batch / time from the first batch's masks to the last
  mask (file times: the throughput once the model is loaded, measured the same way for every entry);
- ``images_per_s``: all images over the whole call; for Ray that includes starting the actors and loading
  the model in each, for one process the model is loaded before the call.

    pytest bench/test_distributed.py --benchmark-only -s
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import alnet_fast
from alnet_fast.jobs import RunOptions, SegmentRun, collect_inputs, plan_jobs
from alnet_fast.threads import set_threads

ray = pytest.importorskip("ray", reason="the distributed extra is not installed: pip install '.[distributed]'")
from alnet_fast.distributed import init_ray, segment_on_ray  # noqa: E402

IMAGES, SIZE, BATCH = 64, 512, 4
OPTIONS = RunOptions(batch_size=BATCH)
CPUS = os.cpu_count() or 1


def rates(out: Path, seconds: float) -> dict:
    """Images/s over the whole call, and steady: from the first batch's masks on disk to the last mask's."""
    times = sorted(path.stat().st_mtime for path in out.glob("*.png"))
    assert len(times) == IMAGES
    return {"images_per_s": IMAGES / seconds, "steady_images_per_s": (IMAGES - BATCH) / (times[-1] - times[BATCH - 1])}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from alnet_fast.io import read_image, write_png

    if "nuclei" not in alnet_fast.bundled_models():
        pytest.skip("no bundled 'nuclei' model in this install")
    sample = read_image(alnet_fast.checkpoint.BUNDLED_DIR.parent / "data" / "nuclei.tif")
    tile = np.block([[sample, sample[:, ::-1]], [sample[::-1], sample[::-1, ::-1]]])
    tile = np.pad(tile, [(0, max(0, SIZE - tile.shape[0])), (0, max(0, SIZE - tile.shape[1]))], mode="reflect")
    folder = tmp_path_factory.mktemp("images")
    for i in range(IMAGES):
        write_png(folder / f"img{i:02d}.png", np.roll(tile[:SIZE, :SIZE], 8 * i, axis=i % 2))
    return folder


@pytest.fixture(scope="module")
def local_ray():
    init_ray(num_cpus=CPUS)  # from the checkout, workers still import the installed, built package
    yield
    ray.shutdown()


def jobs_into(images: Path, out: Path):
    return plan_jobs(collect_inputs([str(images)]), out, overlay=False, probs=False)


def timed(benchmark, entry: str, run) -> None:
    """One round of ``run(out)`` into a fresh folder; the rates go to extra_info and are printed."""
    outs = []

    def round_():
        outs.append(Path(tempfile.mkdtemp(prefix="alnet_bench_out_")))
        start = time.perf_counter()
        run(outs[-1])
        outs.append(time.perf_counter() - start)

    benchmark.group = "scale out: 64 images 512x512"
    benchmark.pedantic(round_, rounds=1, warmup_rounds=0)
    out, seconds = outs
    result = rates(out, seconds)
    shutil.rmtree(out)
    benchmark.extra_info.update(entry=entry, images=IMAGES, size=SIZE, cpus=CPUS,
                                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "(default)"), **result)
    print(f"\n{entry}: {result['steady_images_per_s']:.2f} images/s steady, {result['images_per_s']:.2f} images/s "
          "over the whole call")


def test_one_process(benchmark, images):
    set_threads(CPUS)
    segmenter = alnet_fast.load("nuclei", device="cpu", batch_size=BATCH)
    timed(benchmark, "1 process", lambda out: SegmentRun(segmenter, OPTIONS).segment_all(jobs_into(images, out)))


@pytest.mark.parametrize("workers", [1, 2])
def test_ray(benchmark, images, local_ray, workers):
    load = dict(source="nuclei", device="cpu", batch_size=BATCH)

    def run(out):
        done, failed = segment_on_ray(jobs_into(images, out), load, OPTIONS, workers=workers,
                                      threads=max(1, CPUS // workers))
        assert len(done) == IMAGES and not failed

    timed(benchmark, f"Ray, {workers} worker{'s' if workers > 1 else ''}", run)

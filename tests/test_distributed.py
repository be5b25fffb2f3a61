"""alnet_fast.distributed and ``alnet-fast segment --ray`` on a real local Ray instance (2 CPUs, loopback only).

One Ray instance serves the module; every run starts its own pool of SegmentWorker actors on it. The
reference is the single-process CLI's output on the same inputs; both use the native kernels, whose
results do not depend on the batch composition or the thread count (each output element is accumulated
in one fixed order), so the files must be byte-identical.
"""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import alnet_fast
import alnet_fast.cli
from alnet_fast.backends import native

pytest.importorskip("ray.data", reason="the distributed extra is not installed: pip install '.[distributed]'")
import ray  # noqa: E402

from alnet_fast import distributed  # noqa: E402

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")

SIZES = [(64, 64), (96, 128), (160, 120), (256, 200), (384, 512)]
IMAGES = 40
BAD = {"corrupt.png": "ImageReadError", "empty.tif": "ImageReadError", "stack.tif": "ValueError"}
RUN_TIMEOUT_S = 150  # a watchdog for each run: actors start in seconds, but this box is shared


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    distributed.init_ray(num_cpus=2)  # run from the repository root, workers still import the installed package
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """IMAGES images of mixed sizes (8-bit PNG, 16-bit TIFF) in two folders, and the BAD files."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        h, w = SIZES[i % len(SIZES)]
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        if i % 3:
            Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8)).save(sub / f"img{i:02d}.png")
        else:
            tifffile.imwrite(sub / f"img{i:02d}.tif", (rng.random((h, w)) * 65535).astype(np.uint16))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n then nothing an image needs")
    (folder / "empty.tif").write_bytes(b"")
    # 4-D: not an image
    tifffile.imwrite(folder / "stack.tif", np.zeros((2, 3, 32, 32), np.uint8), photometric="minisblack")
    return folder


def cli(*argv) -> int:
    return alnet_fast.cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def reference(inputs, checkpoint, tmp_path_factory):
    """The single-process CLI's outputs."""
    out = tmp_path_factory.mktemp("reference")
    assert cli("segment", inputs, "-o", out, "--model", checkpoint, "--backend", "native", "--overlay", "-q") == 1
    return files(out)


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones included, by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def segment(inputs, out, checkpoint, **kwargs) -> distributed.Summary:
    """segment_dataset on the test's Ray instance, failing the test if it runs past RUN_TIMEOUT_S."""
    kwargs = {"model": str(checkpoint), "backend": "native", "num_workers": 2, "overlay": True, **kwargs}
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(distributed.segment_dataset, [str(inputs)], out, **kwargs).result(timeout=RUN_TIMEOUT_S)


def test_outputs_match_the_single_process_cli_and_bad_inputs_fail_with_reasons(inputs, checkpoint, reference,
                                                                                tmp_path):
    out = tmp_path / "out"
    summary = segment(inputs, out, checkpoint, batch_size=4)
    assert len(summary.done) == IMAGES and summary.skipped == []
    assert {path.name: reason.split(":")[0] for path, reason in summary.failed} == BAD
    assert len(reference) == 2 * IMAGES  # a mask and an overlay per image, nothing for the bad ones
    assert files(out) == reference


def test_cli_ray_resumes_and_skips_finished_outputs(inputs, checkpoint, reference, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name, data in reference.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    removed = sorted(reference)[::8]  # a few masks and overlays, as an interrupted run leaves them
    for name in removed:
        (out / name).unlink()
    redone = {stem(name) for name in removed}  # an input with any output missing is segmented again
    kept = {name: (out / name).stat().st_mtime_ns for name in reference if stem(name) not in redone}
    code = cli("segment", inputs, "-o", out, "--model", checkpoint, "--backend", "native", "--overlay", "-q",
               "--skip-existing", "--ray", "--workers", "2")
    assert code == 1  # the bad inputs still fail
    summary = capsys.readouterr().out
    assert f"{len(redone)} segmented, {IMAGES - len(redone)} skipped (outputs exist), {len(BAD)} failed" in summary
    assert files(out) == reference
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in kept.items())  # not rewritten


def stem(output: str) -> str:
    """The input's relative name without suffix, for its mask or its overlay."""
    return Path(output).with_suffix("").as_posix().removesuffix("_overlay")


def worker_processes(title: bytes) -> list[int]:
    """PIDs of this test's Ray workers (descendants of this process) whose title contains ``title``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if title in (entry / "cmdline").read_bytes() and _descends_from_us(int(entry.name)):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return pids


def _descends_from_us(pid: int) -> bool:
    while pid > 1:
        if pid == os.getpid():
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the first SegmentWorker actor seen running a batch, once, and records what it saw."""

    def __init__(self, out: Path):
        super().__init__(daemon=True)
        self.out, self.killed, self.masks_before = out, None, None
        self.stop = threading.Event()

    def run(self):
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            busy = worker_processes(b"SegmentWorker)).submit")  # the actor's title while it runs a batch
            if busy:
                self.masks_before = sum(1 for p in self.out.rglob("img*.png") if "overlay" not in p.name)
                os.kill(busy[0], signal.SIGKILL)
                self.killed = busy[0]
                return
            time.sleep(0.002)


def run_with_a_killed_worker(inputs, out, checkpoint) -> tuple[distributed.Summary, WorkerKiller]:
    killer = WorkerKiller(out)
    killer.start()
    try:
        summary = segment(inputs, out, checkpoint, batch_size=2)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "no worker was seen running a batch"
    assert killer.masks_before < IMAGES  # it was killed before the run was over
    return summary, killer


def test_a_killed_worker_is_restarted_and_its_batch_retried(inputs, checkpoint, reference, tmp_path):
    out = tmp_path / "out"
    summary, killer = run_with_a_killed_worker(inputs, out, checkpoint)
    assert len(summary.done) == IMAGES and len(summary.failed) == len(BAD)
    assert killer.killed not in worker_processes(b"SegmentWorker")
    # every output once and whole; a kill -9 mid-write may leave a hidden temporary, never a named output
    leftovers = {name: data for name, data in files(out).items() if name not in reference}
    assert all(Path(name).name.startswith(".") and ".part" in name for name in leftovers)
    assert {name: data for name, data in files(out).items() if name in reference} == reference


def test_workers_that_cannot_load_the_model_end_the_run_with_one_line(inputs, checkpoint, tmp_path):
    with pytest.raises(RuntimeError, match=r"^the Ray run failed: .*BackendUnavailable: .*float16$"):
        segment(inputs, tmp_path / "out", checkpoint, dtype="float16", num_workers=1)  # native CPU: f32/bf16 only
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("inputs,workers,batch,expected", [
    (64, 1, 4, 16), (64, 2, 4, 8), (1000, 8, 4, 16), (10, 2, 4, 4), (3, 1, 8, 8), (100_000, 32, 4, 16)])
def test_tasks_are_up_to_16_inputs_and_at_least_a_batch_leaving_each_worker_4(inputs, workers, batch, expected):
    size = distributed.task_size(inputs, workers, batch)
    assert size == expected
    assert size >= batch and (size == batch or size == distributed.TASK_INPUTS
                              or -(-inputs // size) >= distributed.MIN_TASKS_PER_WORKER * workers)

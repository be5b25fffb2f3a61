"""Scaling out without Ray: ``segment --num-parts K --part-id I``, manifests, and ``--threads``."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import alnet_fast
import alnet_fast.cli
from alnet_fast.backends import native
from alnet_fast.jobs import collect_inputs, plan_jobs, select_part
from alnet_fast.threads import set_threads


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """13 images of two sizes in nested folders."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    for i in range(13):
        sub = folder / f"p{i % 3}" / ("s1" if i % 2 else "s2")
        sub.mkdir(parents=True, exist_ok=True)
        size = (48, 64) if i % 2 else (64, 40)
        Image.fromarray((rng.random(size) * 255).astype(np.uint8)).save(sub / f"im{i:02d}.png")
    return folder


def cli(*argv) -> int:
    return alnet_fast.cli.main([str(a) for a in argv])


def outputs(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_parts_are_disjoint_cover_the_inputs_and_do_not_depend_on_listing_order_or_mount(inputs, tmp_path):
    jobs = plan_jobs(collect_inputs([str(inputs)]), tmp_path / "out", overlay=False, probs=False)
    parts = [select_part(jobs, 4, i) for i in range(4)]
    names = [[job.name.as_posix() for job in part] for part in parts]
    assert sorted(sum(names, [])) == sorted(job.name.as_posix() for job in jobs)  # cover, and disjoint
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    shuffled = random.Random(0).sample(jobs, len(jobs))
    assert [[job.name.as_posix() for job in select_part(shuffled, 4, i)] for i in range(4)] == names
    moved = plan_jobs([(Path("/elsewhere") / job.name, job.name) for job in jobs], tmp_path / "o2", False, False)
    assert [[job.name.as_posix() for job in select_part(moved, 4, i)] for i in range(4)] == names


def test_cli_parts_write_disjoint_outputs_that_add_up_to_the_whole_run(inputs, checkpoint, tmp_path, capsys):
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    assert cli("segment", inputs, "-o", whole, "--model", checkpoint, "--backend", "torch", "-q") == 0
    seen: set[str] = set()
    for part in range(3):
        assert cli("segment", inputs, "-o", parted, "--model", checkpoint, "--backend", "torch", "-q",
                   "--num-parts", 3, "--part-id", part) == 0
        new = outputs(parted) - seen
        assert f"{len(new)} segmented" in capsys.readouterr().out and len(new) in (4, 5)
        seen |= new
    assert seen == outputs(whole)
    assert all((parted / name).read_bytes() == (whole / name).read_bytes() for name in seen)


@pytest.mark.parametrize("argv, message", [
    (["--num-parts", "3", "--part-id", "3"], "part id must be in [0, 2]"),
    (["--num-parts", "2", "--part-id", "-1"], "part id must be in [0, 1]"),
    (["--workers", "2"], "--workers needs --ray"),
    (["--ray=not an address"], "is not host:port"),
])
def test_bad_scale_out_arguments_exit_2_with_one_line(inputs, checkpoint, tmp_path, capsys, argv, message):
    assert cli("segment", inputs, "-o", tmp_path / "out", "--model", checkpoint, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_num_parts_must_be_positive(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli("segment", inputs, "-o", tmp_path / "out", "--num-parts", "0")
    assert exit_info.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


def test_a_manifest_lists_files_and_keeps_their_relative_names(inputs, checkpoint, tmp_path, capsys):
    listed = sorted(inputs.rglob("*.png"))[:3]
    manifest = inputs / "list.txt"
    manifest.write_text("# three of them\n\n" + "\n".join(p.relative_to(inputs).as_posix() for p in listed) + "\n")
    out = tmp_path / "out"
    assert cli("segment", manifest, "-o", out, "--model", checkpoint, "--backend", "torch", "-q") == 0
    assert outputs(out) == {p.relative_to(inputs).as_posix() for p in listed}
    manifest.write_text("p0/s2/missing.png\n")
    assert cli("segment", manifest, "-o", out, "--model", checkpoint, "-q") == 2
    assert "line 1: no file" in capsys.readouterr().err
    manifest.unlink()


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    set_threads(before)


@pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")
def test_threads_reach_torch_and_the_native_kernels_and_leave_the_masks_unchanged(inputs, checkpoint, tmp_path,
                                                                                  restore_threads):
    one, default = tmp_path / "one", tmp_path / "default"
    assert cli("segment", inputs, "-o", default, "--model", checkpoint, "--backend", "native", "-q") == 0
    assert cli("segment", inputs, "-o", one, "--model", checkpoint, "--backend", "native", "-q", "--threads", 1) == 0
    assert torch.get_num_threads() == 1 and alnet_fast.build_info()["cpu"]["omp_max_threads"] == 1
    assert all((one / name).read_bytes() == (default / name).read_bytes() for name in outputs(default))
    with pytest.raises(ValueError, match=">= 1"):
        set_threads(0)
    with pytest.raises(TypeError, match="int"):
        set_threads(1.5)

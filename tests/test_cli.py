"""The ``alnet-fast segment`` and ``export`` commands, run through alnet_fast.cli.main on real files."""

import shutil

import nibabel as nib
import numpy as np
import pytest
import tifffile
from nibabel.testing import data_path as NIBABEL_DATA
from PIL import Image
from pydicom.data import get_testdata_file

import alnet_fast
import alnet_fast.cli
from alnet_fast import jobs
from alnet_fast.jobs import render_overlay
from alnet_fast.atomic import atomic_path
from alnet_fast.volumes import segment_nifti


@pytest.fixture(autouse=True)
def only_these_commands(monkeypatch):
    """The commands under test; the others (train, eval) are tested elsewhere."""
    monkeypatch.setattr(alnet_fast.cli, "COMMANDS", ("segment", "export"))


@pytest.fixture(scope="module")
def segmenter(checkpoint):
    return alnet_fast.load(checkpoint, backend="torch", device="cpu")


def cli(*argv) -> int:
    return alnet_fast.cli.main([str(a) for a in argv])


def make_inputs(folder):
    """A folder of every supported format: 8-bit PNG, RGB JPEG, 16-bit TIFF, a DICOM slice, a NIfTI volume."""
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    Image.fromarray((rng.random((70, 90)) * 255).astype(np.uint8)).save(folder / "a.png")
    Image.fromarray((rng.random((64, 80, 3)) * 255).astype(np.uint8)).save(folder / "sub" / "b.jpg")
    tifffile.imwrite(folder / "c.tif", (rng.random((100, 40)) * 65535).astype(np.uint16))
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "mr.dcm")
    nib.save(nib.load(NIBABEL_DATA / "anatomical.nii"), folder / "anat.nii.gz")
    (folder / "notes.txt").write_text("not an image, not collected")
    return folder


def hidden_files(folder):
    return [p for p in folder.rglob(".*")]


def test_folder_with_one_corrupt_file_segments_the_rest_and_exits_1(tmp_path, checkpoint, segmenter, capsys):
    inputs = make_inputs(tmp_path / "in")
    shutil.copy(get_testdata_file("MR_truncated.dcm"), inputs / "broken.dcm")
    out = tmp_path / "out"
    assert cli("segment", inputs, "-o", out, "--model", checkpoint, "--overlay", "--probs", "--backend", "torch") == 1
    captured = capsys.readouterr()
    assert "broken.dcm" in captured.err and "Traceback" not in captured.err
    assert "5 segmented, 0 skipped (outputs exist), 1 failed" in captured.out and "images/s" in captured.out
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == ["a.png", "a_overlay.png", "a_probs.tif", "anat.nii.gz", "anat_overlay.png", "anat_probs.nii.gz",
                     "c.png", "c_overlay.png", "c_probs.tif", "mr.png", "mr_overlay.png", "mr_probs.tif",
                     "sub/b.png", "sub/b_overlay.png", "sub/b_probs.tif"]
    assert not hidden_files(out)
    # every output is what the Python API gives for the same file
    for name in ("a.png", "sub/b.jpg", "c.tif", "mr.dcm"):
        stem = name.rsplit(".", 1)[0]
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{stem}.png")), segmenter.segment(inputs / name))
    probs = tifffile.imread(out / "c_probs.tif")
    assert probs.std() > 0
    np.testing.assert_array_equal(probs, segmenter.predict(inputs / "c.tif"))  # same backend, same batches
    overlay = np.asarray(Image.open(out / "a_overlay.png"))
    assert overlay.shape == (70, 90, 3) and overlay.dtype == np.uint8
    volume = nib.load(out / "anat.nii.gz")
    np.testing.assert_array_equal(np.asarray(volume.dataobj), segment_nifti(segmenter, inputs / "anat.nii.gz").mask)
    np.testing.assert_array_equal(volume.affine, nib.load(inputs / "anat.nii.gz").affine)


def test_interrupted_run_leaves_no_partial_file_and_resumes(tmp_path, checkpoint, capsys, monkeypatch):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(5):
        Image.fromarray(np.full((40, 40), 40 * i, np.uint8)).save(inputs / f"img{i}.png")
    out = tmp_path / "out"
    real_write_png = jobs.write_png
    written = []

    def interrupted_on_third(path, array):
        if len(written) == 2:  # Ctrl-C in the middle of writing the third mask
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"\x89PNG half a file")
                raise KeyboardInterrupt
        written.append(path)
        return real_write_png(path, array)

    monkeypatch.setattr(jobs, "write_png", interrupted_on_third)
    assert cli("segment", inputs, "-o", out, "--model", checkpoint, "--batch-size", "2") == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png"]  # nothing half-written
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    monkeypatch.setattr(jobs, "write_png", real_write_png)
    assert cli("segment", inputs, "-o", out, "--model", checkpoint, "--skip-existing") == 0
    assert "3 segmented, 2 skipped" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}.png" for i in range(5)]
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in first.items())


def test_globs_select_files_and_tiles_match_the_api(tmp_path, checkpoint, segmenter, capsys):
    inputs = make_inputs(tmp_path / "in")
    big = (np.random.default_rng(1).random((150, 200)) * 255).astype(np.uint8)
    Image.fromarray(big).save(inputs / "big.png")
    out = tmp_path / "out"
    assert cli("segment", inputs / "*.png", "-o", out, "--model", checkpoint, "--tile", 64, "-q",
               "--backend", "torch") == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "big.png"]
    tiled = (segmenter.predict(big, tile=64, overlap=0.25) > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "big.png")), tiled)
    assert "2 segmented" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["segment", "{tmp}/missing.png", "-o", "{tmp}/out", "--model", "{ckpt}"], "input '{tmp}/missing.png' not found"),
    (["segment", "{tmp}/none/*.png", "-o", "{tmp}/out", "--model", "{ckpt}"], "no file matches"),
    (["segment", "{tmp}/in", "-o", "{tmp}/out", "--model", "no-such-model"], "neither a checkpoint file nor a bundled"),
    (["segment", "{tmp}/in", "-o", "{tmp}/out", "--model", "{ckpt}", "--tile", "100"], "tile must be"),
    (["segment", "{tmp}/in", "-o", "{tmp}/out", "--model", "{ckpt}", "--backend", "nope"], "unknown backend 'nope'"),
    (["segment", "{tmp}/in", "-o", "{tmp}/in/a.png", "--model", "{ckpt}"], "is not a folder"),
    (["export", "--model", "{ckpt}", "--onnx", "{tmp}/model.txt"], "must end in .onnx"),
])
def test_user_errors_print_one_line_and_exit_2(tmp_path, checkpoint, capsys, argv, message):
    make_inputs(tmp_path / "in")
    fill = {"tmp": str(tmp_path), "ckpt": str(checkpoint)}
    assert cli(*[a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("alnet-fast ") and message.format(**fill) in err
    assert not (tmp_path / "out").exists()


def test_default_model_missing_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(alnet_fast.checkpoint, "BUNDLED_DIR", tmp_path / "no-weights")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "x.png")
    assert cli("segment", tmp_path / "x.png", "-o", tmp_path / "out") == 2
    assert "model 'nuclei' is neither a checkpoint file nor a bundled model" in capsys.readouterr().err


def test_two_inputs_writing_the_same_output_are_refused(tmp_path, checkpoint, capsys):
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "x.png")
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((40, 40), np.uint16))
    assert cli("segment", tmp_path / "x.png", tmp_path / "x.tif", "-o", tmp_path / "out", "--model", checkpoint) == 2
    assert "would both write" in capsys.readouterr().err


def test_export_command_writes_a_runnable_onnx_file(tmp_path, checkpoint, capsys, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setenv("HOME", str(tmp_path))
    target = tmp_path / "exports" / "small.onnx"
    assert cli("export", "--model", checkpoint, "--onnx", target) == 0
    assert "wrote" in capsys.readouterr().out
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((2, 1, 64, 96)).astype(np.float32)
    assert session.run(None, {"image": x})[0].shape == (2, 1, 64, 96)
    assert [p.name for p in target.parent.iterdir()] == ["small.onnx"]


def test_overlay_colours_only_labelled_pixels():
    image = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (10, 1))  # [10, 50] gray ramp
    mask = np.zeros((10, 50), np.uint8)
    mask[:, 20:30] = 1
    rgb = render_overlay(image, mask)
    assert rgb.shape == (10, 50, 3) and rgb.dtype == np.uint8
    plain, marked = rgb[mask == 0], rgb[mask == 1].astype(int)
    assert (plain[:, 0] == plain[:, 1]).all() and (plain[:, 1] == plain[:, 2]).all()  # gray stays gray
    assert (marked[:, 0] > marked[:, 1] + 40).all()  # label 1 is tinted red
    assert render_overlay(np.zeros((4, 4, 4), np.uint16), np.zeros((4, 4), np.uint8)).shape == (4, 4, 3)


def test_folder_collection_skips_hidden_and_output_files(tmp_path):
    folder = make_inputs(tmp_path / "in")
    (folder / ".a.part.png").write_bytes(b"temporary")
    (folder / "out").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "out" / "a.png")
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "IM0001")  # DICOM without a suffix
    found = jobs.collect_inputs([str(folder)], exclude=folder / "out")
    assert sorted(str(rel) for _, rel in found) == ["IM0001", "a.png", "anat.nii.gz", "c.tif", "mr.dcm", "sub/b.jpg"]


def test_sigint_from_outside_leaves_only_complete_files_and_resumes(tmp_path, checkpoint):
    """A real Ctrl-C (SIGINT) sent to a running ``python -m alnet_fast.cli segment``, then a resumed run."""
    import signal
    import subprocess
    import sys
    import time

    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(inputs / f"img{i:03d}.png")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "alnet_fast.cli", "segment", str(inputs), "-o", str(out), "--model", str(checkpoint),
            "--backend", "torch", "--batch-size", "1", "-q"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and any(out.glob("img*.png"))) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    done = sorted(out.iterdir())
    assert 0 < len(done) < 60 and not hidden_files(out)
    for path in done:  # every file present is complete
        assert np.asarray(Image.open(path)).shape == (64, 64)

    resumed = subprocess.run(argv + ["--skip-existing"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{60 - len(done)} segmented, {len(done)} skipped" in resumed.stdout
    assert len(list(out.iterdir())) == 60


def test_input_failing_inside_a_batch_fails_alone(tmp_path, checkpoint, segmenter, capsys):
    """A file that reads but cannot be segmented (NaN pixels) is reported; its batch-mates are still written."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    for name in ("a.png", "c.png"):
        Image.fromarray(good).save(inputs / name)
    bad = np.ones((48, 48), np.float32)
    bad[3, 4] = np.nan
    tifffile.imwrite(inputs / "b.tif", bad)
    out = tmp_path / "out"
    assert cli("segment", inputs, "-o", out, "--model", checkpoint, "--backend", "torch", "--batch-size", 3) == 1
    captured = capsys.readouterr()
    assert "b.tif" in captured.err and "NaN" in captured.err
    assert "2 segmented, 0 skipped (outputs exist), 1 failed" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "c.png")), segmenter.segment(good))

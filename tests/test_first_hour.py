"""A newcomer's first hour: every path they try ends in a result or in one clear line (exit code 2).

Devices that are not there, a missing optional dependency, the data fetcher, training resume, file
permissions, the CUDA reason on a machine without a GPU, inputs inside the output folder, --help, and
inputs unlike the model's training data.
"""

import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from nibabel.testing import data_path as NIBABEL_DATA
from PIL import Image
from pydicom.data import get_testdata_file

import alnet_fast
import alnet_fast.cli
from alnet_fast import BackendUnavailable, ModalityMismatchWarning
from alnet_fast.backends.native import extension
from alnet_fast.modality import check_input, mismatch, training_data
from alnet_fast.train import DATASET_MODALITIES, TrainSettings, train
from alnet_fast.train.augment import Augmentation
from alnet_fast.train.fetch import default_data_dir, install_verified, sha256
from alnet_fast.train.trainer import BEST_FILE, STATE_FILE

SMALL = alnet_fast.ALNetConfig(in_channels=1, widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                               context_channels=16, decoder_channels=16)
ONE_STEP = TrainSettings(epochs=1, steps_per_epoch=1, crop=64)
CROP = Path(__file__).parent / "data" / "nuclei_train_crop.npz"  # real nuclei (see test_train.py)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


@pytest.fixture(scope="module")
def mr_model(tmp_path_factory):
    """A small checkpoint that records MR volume slices as its training data."""
    path = tmp_path_factory.mktemp("model") / "mr.safetensors"
    alnet_fast.save(alnet_fast.ALNet(SMALL).eval(), path, metadata=DATASET_MODALITIES["brain"])
    return path


@pytest.fixture(scope="module")
def crop():
    """Real nuclei, split into a training part (left 192 columns) and a validation part."""
    with np.load(CROP) as f:
        image = f["image"]
        mask = np.unpackbits(f["mask"])[: image.size].reshape(image.shape).astype(bool)
    return [(image[:, :192], mask[:, :192])], [(image[:, 192:], mask[:, 192:])]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``alnet-fast ARGV``."""
    code = alnet_fast.cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *phrases: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def cuda_absence() -> str | None:
    """What the device check must say about "cuda" here, or None when CUDA is usable."""
    if not torch.backends.cuda.is_built():
        return "this torch build has no CUDA"
    if torch.cuda.device_count() == 0:
        return "no CUDA device visible"
    return None


# 1. Devices

def test_an_unavailable_device_raises_backend_unavailable_saying_why(mr_model):
    reason = cuda_absence()
    for backend in ("auto", "torch", "native"):
        if reason is not None:
            with pytest.raises(BackendUnavailable, match=reason):
                alnet_fast.load(mr_model, backend=backend, device="cuda")
    if reason is None:
        count = torch.cuda.device_count()
        with pytest.raises(BackendUnavailable, match=f"only {count} CUDA device"):
            alnet_fast.load(mr_model, device=f"cuda:{count}")
    with pytest.raises(BackendUnavailable, match="unknown device 'tpu'; expected 'cpu', 'cuda' or 'cuda:N'"):
        alnet_fast.load(mr_model, device="tpu")
    with pytest.raises(BackendUnavailable, match="no backend runs on 'meta' devices"):
        alnet_fast.load(mr_model, device="meta")


def test_the_cli_reports_an_unavailable_device_in_one_line(tmp_path, capsys, mr_model):
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "a.png")
    devices = ["tpu"] + (["cuda", "cuda:0"] if cuda_absence() else []) + (
        ["cuda:7"] if torch.cuda.device_count() < 8 else [])
    for device in devices:
        code, _, err = run_cli(capsys, "segment", tmp_path / "a.png", "-o", tmp_path / "out", "--model", mr_model,
                               "--device", device)
        assert_one_line_error(code, err, "alnet-fast segment: error: ", "device")
        assert not (tmp_path / "out").exists()


# 2. Optional dependencies name their extra

def test_export_without_onnx_names_the_extra(tmp_path, capsys, monkeypatch, mr_model):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` sees when onnx is not installed
    code, _, err = run_cli(capsys, "export", "--model", mr_model, "--onnx", tmp_path / "m.onnx")
    assert_one_line_error(code, err, "needs onnx", "pip install 'alnet_fast[export]'")
    assert list(tmp_path.iterdir()) == []


# 3. The data fetcher

def test_data_goes_to_a_user_cache_folder_unless_told_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("ALNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "alnet_fast" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "alnet_fast" / "data"
    monkeypatch.setenv("ALNET_DATA", str(tmp_path / "mine"))
    assert default_data_dir() == tmp_path / "mine"


def test_only_files_with_the_expected_checksum_are_installed(tmp_path, capsys):
    source = tmp_path / "img2d.tif"
    source.write_bytes(CROP.read_bytes())
    with pytest.raises(ValueError, match="checksum mismatch for img2d.tif"):
        install_verified(source, tmp_path / "data" / "img2d.tif", "0" * 64)
    assert not (tmp_path / "data").exists() or list((tmp_path / "data").iterdir()) == []
    install_verified(source, tmp_path / "data" / "img2d.tif", sha256(source))
    assert (tmp_path / "data" / "img2d.tif").read_bytes() == source.read_bytes()


def test_fetch_data_and_train_without_data_say_what_to_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ALNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, _, err = run_cli(capsys, "fetch-data", "nope")
    assert_one_line_error(code, err, "unknown data set(s) ['nope']", "brain", "nuclei")
    code, _, err = run_cli(capsys, "train", "--dataset", "nuclei", "--out", tmp_path / "run")
    assert_one_line_error(code, err, str(tmp_path / "cache" / "alnet_fast" / "data" / "nuclei"),
                          "alnet-fast fetch-data")


# 4. Training resume

def test_resume_without_a_state_and_a_new_run_over_one_are_refused(tmp_path, crop):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(*crop, tmp_path, SMALL, ONE_STEP, resume=True, progress=False)
    assert not (tmp_path / STATE_FILE).exists()
    train(*crop, tmp_path, SMALL, ONE_STEP, progress=False)
    before = (tmp_path / STATE_FILE).read_bytes()
    with pytest.raises(FileExistsError, match="holds the state of an earlier run.*pass --resume"):
        train(*crop, tmp_path, SMALL, ONE_STEP, progress=False)
    assert (tmp_path / STATE_FILE).read_bytes() == before  # not overwritten
    with pytest.raises(ValueError, match="resume must be True, False or 'auto'"):
        train(*crop, tmp_path, SMALL, ONE_STEP, resume="yes", progress=False)


def test_a_settings_mismatch_names_each_differing_flag(tmp_path, crop):
    train(*crop, tmp_path, SMALL, ONE_STEP, progress=False)
    other = TrainSettings(epochs=3, steps_per_epoch=1, crop=64, lr=1e-3, augmentation=Augmentation(max_shift=4))
    with pytest.raises(ValueError) as error:
        train(*crop, tmp_path, SMALL, other, resume=True, progress=False)
    message = str(error.value)
    assert "--lr 0.005 -> 0.001" in message and "--max-shift 16 -> 4" in message, message
    assert "--epochs" not in message.split("only --epochs")[0] and "--crop" not in message  # only what differs
    wider = alnet_fast.ALNetConfig(**{**SMALL.to_dict(), "decoder_channels": 32})
    with pytest.raises(ValueError, match="model config decoder_channels 16 -> 32"):
        train(*crop, tmp_path, wider, ONE_STEP, resume=True, progress=False)


def test_the_run_says_where_it_starts(tmp_path, crop, capsys):
    train(*crop, tmp_path, SMALL, ONE_STEP, progress=True)
    assert "starting at epoch 1 of 1" in capsys.readouterr().out
    two = TrainSettings(epochs=2, steps_per_epoch=1, crop=64)
    result = train(*crop, tmp_path, SMALL, two, resume=True, progress=True)
    assert f"resuming at epoch 2 of 2 from {tmp_path / STATE_FILE}" in capsys.readouterr().out
    assert [h["epoch"] for h in result.history] == [1, 2]
    again = train(*crop, tmp_path, SMALL, two, resume="auto", progress=True)
    assert "nothing to train" in capsys.readouterr().out and again.history == result.history
    fresh = train(*crop, tmp_path / "fresh", SMALL, ONE_STEP, resume="auto", progress=True)
    assert "starting at epoch 1 of 1" in capsys.readouterr().out and len(fresh.history) == 1


def test_train_cli_resume_errors_are_one_line(tmp_path, crop, capsys):
    (image, mask), = crop[0]
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "b.tif", image[:, ::-1].copy())
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "a.png")
    Image.fromarray(mask[:, ::-1].astype(np.uint8) * 255).save(tmp_path / "b.png")
    argv = ["train", "--images", tmp_path / "a.tif", tmp_path / "b.tif", "--masks", tmp_path / "a.png",
            tmp_path / "b.png", "--out", tmp_path / "run", "--epochs", "1", "--steps-per-epoch", "1",
            "--crop", "64", "--no-progress"]
    code, _, err = run_cli(capsys, *argv, "--resume")
    assert_one_line_error(code, err, "nothing to resume")
    assert run_cli(capsys, *argv)[0] == 0
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "pass --resume")
    code, _, err = run_cli(capsys, *argv, "--resume", "--lr", "0.001")
    assert_one_line_error(code, err, "--lr 0.005 -> 0.001")


# 5. Permissions

def test_every_output_gets_the_umask_mode(tmp_path, crop):
    old = os.umask(0o027)
    try:
        result = train(*crop, tmp_path, SMALL, ONE_STEP, progress=False)
        alnet_fast.save(alnet_fast.ALNet(SMALL).eval(), tmp_path / "saved.safetensors")
    finally:
        os.umask(old)
    for name in (BEST_FILE, STATE_FILE, "saved.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
    assert result.best_path == tmp_path / BEST_FILE


# 6. CUDA kernels on a machine without a GPU

def test_no_driver_is_said_plainly():
    if extension._driver_loadable():
        pytest.skip("an NVIDIA driver (libcuda) is installed here: the runtime's own error is the reason")
    reason = extension._no_device_reason("CUDA driver version is insufficient for CUDA runtime version")
    assert reason.startswith("no NVIDIA driver installed") and "insufficient" not in reason
    info = alnet_fast.build_info()["cuda"]
    assert info["reason"] is not None and "insufficient" not in info["reason"]


# 7. Inputs inside the output folder

def test_segmenting_a_folder_into_itself_says_why_nothing_was_found(tmp_path, capsys, mr_model):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / name)
    code, _, err = run_cli(capsys, "segment", tmp_path, "-o", tmp_path, "--model", mr_model)
    assert_one_line_error(code, err, "the 2 image file(s) there are inside the output folder")


# 8. Help and documentation

@pytest.mark.parametrize("command", alnet_fast.cli.COMMANDS)
def test_every_option_has_help_and_every_command_is_documented(command):
    parser = alnet_fast.cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    undocumented = [a.option_strings or a.dest for a in sub._actions if a.dest != "help" and not a.help]
    assert undocumented == [], undocumented
    help_text = " ".join(sub.format_help().split())  # argparse wraps lines
    if command == "train":
        assert f"(default: {TrainSettings().epochs})" in help_text and "Exit codes" in help_text
    docs = DOCS.read_text()
    exit_codes = docs.split("## Exit codes")[1].split("\n## ")[0]
    assert f"alnet-fast {command} " in docs and f"| `{command}` |" in exit_codes, command


# 9. Inputs unlike the model's training data

def test_the_bundled_models_record_their_training_data():
    assert training_data("nuclei") == {"training_modality": "fluorescence microscopy", "training_dims": "2d"}
    assert training_data("brain") == {"training_modality": "MR", "training_dims": "3d-slices"}


def test_mismatched_inputs_are_named(tmp_path):
    nuclei, brain = DATASET_MODALITIES["nuclei"], DATASET_MODALITIES["brain"]
    ct, mr, volume = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm"), NIBABEL_DATA / "anatomical.nii"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "a.png")
    assert mismatch(ct, brain) == "a CT DICOM, but the model was trained on MR volume slices"
    assert mismatch(ct, nuclei) == "a CT DICOM, but the model was trained on fluorescence microscopy 2-D images"
    assert mismatch(volume, nuclei).startswith("a NIfTI volume")
    assert mismatch(mr, brain) is None and mismatch(volume, brain) is None and mismatch(tmp_path / "a.png", nuclei) is None
    assert mismatch(ct, {}) is None  # a checkpoint that records nothing: no guess
    with pytest.warns(ModalityMismatchWarning, match="CT_small.dcm' is a CT DICOM"):
        assert check_input("brain", ct)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not check_input("brain", mr)


def test_segment_warns_once_per_kind_and_writes_a_volume_overlay(tmp_path, capsys, mr_model):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), inputs / "ct1.dcm")
    shutil.copy(get_testdata_file("CT_small.dcm"), inputs / "ct2.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), inputs / "mr.dcm")
    nib.save(nib.load(NIBABEL_DATA / "anatomical.nii"), inputs / "anat.nii.gz")
    code, out, err = run_cli(capsys, "segment", inputs, "-o", tmp_path / "out", "--model", mr_model, "--overlay",
                             "-q", "--backend", "torch", "--device", "cpu")
    assert code == 0, err
    warned = [line for line in err.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "ct1.dcm" in warned[0] and "CT DICOM" in warned[0], err
    volume = nib.load(inputs / "anat.nii.gz").shape
    overlay = np.asarray(Image.open(tmp_path / "out" / "anat_overlay.png"))
    assert overlay.shape == (volume[0], volume[1], 3)  # the middle slice along the default --axis 2
    assert "4 segmented" in out


# 10. The benchmark report says what it plots and where it wrote

def test_bench_report_says_what_it_plots_and_where_it_wrote(tmp_path):
    pytest.importorskip("matplotlib", reason="the bench extra (matplotlib) is not installed")
    repo = Path(__file__).resolve().parent.parent
    results = repo / "bench" / "results" / "cpu-xeon-amx-2core.json"
    done = subprocess.run([sys.executable, str(repo / "bench" / "report.py"), str(results), "--out",
                           str(tmp_path / "report")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table, chart = tmp_path / "report.md", tmp_path / "report.png"
    assert f"wrote {table} (median and min ms; ratios are of minima) and {chart}" in done.stdout
    assert "min ratio to" in table.read_text() and chart.stat().st_size > 0

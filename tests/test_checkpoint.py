"""Checkpoints: round trips, and a typed CheckpointError for every kind of bad file."""

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

import alnet_fast
from alnet_fast import ALNetConfig, CheckpointError, reparameterize
from alnet_fast.checkpoint import read_checkpoint
from alnet_fast.testing import random_alnet

SMALL = ALNetConfig(in_channels=1, widths=(8, 8, 16, 16, 32), depths=(1, 1, 2, 2, 1), context_channels=16,
                    decoder_channels=16)


@pytest.fixture()
def model():
    return random_alnet(SMALL, seed=7)


def test_multibranch_round_trip_equals_reference(model, tmp_path):
    path = alnet_fast.save(model, tmp_path / "m.safetensors")
    x = torch.randn(2, 1, 64, 64)
    reference = alnet_fast.load(model, fold=False, device="cpu").logits(x)
    loaded_ref = alnet_fast.load(path, fold=False, device="cpu").logits(x)
    loaded_folded = alnet_fast.load(path, device="cpu").logits(x)
    assert torch.equal(loaded_ref, reference)  # same weights, same ops: bit-identical
    assert (loaded_folded - reference).abs().max() <= 1e-5 * reference.abs().max() + 1e-6


def test_folded_round_trip(model, tmp_path):
    folded = reparameterize(model)
    path = alnet_fast.save(folded, tmp_path / "f.safetensors", metadata={"note": "hi"})
    ckpt = read_checkpoint(path)
    assert ckpt.kind == "folded" and ckpt.config == SMALL and ckpt.metadata == {"note": "hi"}
    seg = alnet_fast.load(path, device="cpu")
    assert all(torch.equal(seg.model.state_dict()[k], v) for k, v in folded.state_dict().items())
    x = torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        ref = folded(x)
    # the Segmenter runs channels_last (another conv algorithm): fp32 accumulation-order bound
    assert (seg.logits(x) - ref).abs().max() <= 1e-5 * ref.abs().max() + 1e-6


def test_fp16_storage_round_trip(model, tmp_path):
    path = alnet_fast.save(model, tmp_path / "h.safetensors", dtype=torch.float16)
    loaded = alnet_fast.load(path, fold=False, device="cpu").model
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            # fp16 storage: relative rounding 2^-11 ~ 4.9e-4 of each value
            assert torch.allclose(loaded.state_dict()[key], value, rtol=1e-3, atol=1e-6), key


def test_plain_state_dict_pt_with_config(model, tmp_path):
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="no config"):
        alnet_fast.load(path)
    seg = alnet_fast.load(path, config=SMALL, device="cpu")
    wrapped = tmp_path / "w.pth"
    torch.save({"state_dict": model.state_dict(), "config": SMALL.to_dict()}, wrapped)
    x = torch.randn(1, 1, 32, 32)
    assert torch.equal(alnet_fast.load(wrapped, device="cpu").logits(x), seg.logits(x))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_executes_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="execute code"):
        alnet_fast.load(path, config=SMALL)
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"state_dict": Evil()}, zipped)
    with pytest.raises(CheckpointError, match="execute code"):
        alnet_fast.load(zipped, config=SMALL)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="not found"):
        alnet_fast.load("/nonexistent/model.safetensors")


def test_truncated_and_corrupt_files(model, tmp_path):
    path = alnet_fast.save(model, tmp_path / "m.safetensors")
    data = path.read_bytes()
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        alnet_fast.load(truncated)
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x01" * 64)
    with pytest.raises(CheckpointError):
        alnet_fast.load(garbage)
    empty = tmp_path / "e.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        alnet_fast.load(empty)
    torn = tmp_path / "t.pt"
    torch.save(model.state_dict(), torn)
    torn.write_bytes(torn.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        alnet_fast.load(torn, config=SMALL)


def _rewrite(model, path, edit_tensors=None, edit_meta=None):
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "alnet_fast", "format_version": "1", "kind": "multibranch", "config": SMALL.to_json()}
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    save_file(tensors, str(path), metadata=meta)
    return path


def test_unknown_missing_and_misshapen_keys(model, tmp_path):
    extra = _rewrite(model, tmp_path / "x.safetensors", lambda t: t.update(bogus=torch.zeros(1)))
    with pytest.raises(CheckpointError, match="unknown keys \\['bogus'\\]"):
        alnet_fast.load(extra)
    key = "decoder.fuse.conv.weight"
    missing = _rewrite(model, tmp_path / "m.safetensors", lambda t: t.pop(key))
    with pytest.raises(CheckpointError, match=f"missing keys \\['{key}'\\]"):
        alnet_fast.load(missing)
    wrong = _rewrite(model, tmp_path / "w.safetensors", lambda t: t.update({key: torch.zeros(3, 3, 3, 3)}))
    with pytest.raises(CheckpointError, match="wrong shape"):
        alnet_fast.load(wrong)
    nan = _rewrite(model, tmp_path / "n.safetensors", lambda t: t[key].fill_(float("nan")))
    with pytest.raises(CheckpointError, match="NaN"):
        alnet_fast.load(nan)


def test_bad_metadata(model, tmp_path):
    version = _rewrite(model, tmp_path / "v.safetensors", edit_meta=lambda m: m.update(format_version="99"))
    with pytest.raises(CheckpointError, match="unsupported checkpoint format version '99'"):
        alnet_fast.load(version)
    foreign = _rewrite(model, tmp_path / "f.safetensors", edit_meta=lambda m: m.pop("format"))
    with pytest.raises(CheckpointError, match="not an alnet_fast checkpoint"):
        alnet_fast.load(foreign)
    bad_cfg = _rewrite(model, tmp_path / "c.safetensors",
                       edit_meta=lambda m: m.update(config=json.dumps({"widths": [1, 2]})))
    with pytest.raises(CheckpointError, match="invalid config"):
        alnet_fast.load(bad_cfg)


def test_config_mismatch(model, tmp_path):
    path = alnet_fast.save(model, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="config mismatch"):
        alnet_fast.load(path, config=ALNetConfig())
    with pytest.raises(ValueError, match="does not match"):
        alnet_fast.load(model, config=ALNetConfig())


def test_save_is_atomic_and_rejects_reserved_metadata(model, tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        alnet_fast.save(model, tmp_path / "m.safetensors", metadata={"config": "x"})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        alnet_fast.save(torch.nn.Linear(2, 2), tmp_path / "l.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """The first byte of a safetensors file is its header length's low byte: 0x80 is the pickle marker."""
    model = alnet_fast.ALNet(alnet_fast.ALNetConfig(widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1, 1),
                                                    context_channels=16, decoder_channels=16)).eval()
    for pad in range(256):
        path = alnet_fast.save(model, tmp_path / "m.safetensors", metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert read_checkpoint(path).kind == "multibranch"

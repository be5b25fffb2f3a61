"""The benchmark entries: every alnet_fast path and every peer, how to build each runner, and the check each
must pass against the multi-branch fp32 reference before it is timed. Shared by the pytest-benchmark suite
(test_end_to_end.py), interleaved.py and profile_ops.py.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

import alnet_fast
from alnet_fast.backends import get_backend
from alnet_fast.errors import BackendUnavailable
from alnet_fast.export import export_onnx
from alnet_fast.testing import dice

from workload import bench_model
import peers

ONNX_DIR = Path(tempfile.mkdtemp(prefix="alnet_bench_onnx_"))


@dataclass(frozen=True)
class Entry:
    name: str
    precision: str  # "fp32" or "bf16"
    build: Callable[[], peers.Runner]
    needs: tuple[str, ...] = ()  # importable modules
    backend: str | None = None  # alnet_fast backend that must be available on CPU


def folded_onnx_path() -> Path:
    path = ONNX_DIR / "alnet_folded.onnx"
    if not path.exists():
        export_onnx(bench_model(), path)
    return path


def _alnet(backend: str, dtype: torch.dtype, fold: bool = True) -> Callable[[], peers.Runner]:
    return lambda: peers.alnet_fast_runner(bench_model(), backend, dtype, fold)


ENTRIES = [
    Entry("multibranch eager", "fp32", _alnet("torch", torch.float32, fold=False), backend="torch"),
    Entry("alnet_fast torch", "fp32", _alnet("torch", torch.float32), backend="torch"),
    Entry("alnet_fast torch", "bf16", _alnet("torch", torch.bfloat16), backend="torch"),
    Entry("alnet_fast native", "fp32", _alnet("native", torch.float32), backend="native"),
    Entry("alnet_fast native", "bf16", _alnet("native", torch.bfloat16), backend="native"),
    Entry("torch.compile", "fp32", lambda: peers.torch_compile_runner(alnet_fast.reparameterize(bench_model()))),
    Entry("torch.compile", "bf16",
          lambda: peers.torch_compile_runner(alnet_fast.reparameterize(bench_model()), torch.bfloat16)),
    Entry("onnxruntime", "fp32", lambda: peers.onnxruntime_runner(folded_onnx_path()), needs=("onnxruntime", "onnx")),
    Entry("openvino", "fp32", lambda: peers.openvino_runner(folded_onnx_path(), "f32"), needs=("openvino", "onnx")),
    Entry("openvino", "bf16", lambda: peers.openvino_runner(folded_onnx_path(), "bf16"), needs=("openvino", "onnx")),
]

_runners: dict[str, peers.Runner] = {}


def runner_for(entry: Entry) -> peers.Runner:
    for module in entry.needs:
        pytest.importorskip(module, reason=f"{entry.name} needs {module} (pip install '.[bench]')")
    if entry.backend is not None:
        dtype = torch.bfloat16 if entry.precision == "bf16" else torch.float32
        try:
            get_backend(entry.backend, "cpu", dtype)
        except BackendUnavailable as exc:
            pytest.skip(f"{entry.name} {entry.precision}: {exc}")
    key = f"{entry.name} {entry.precision}"
    if key not in _runners:
        _runners[key] = entry.build()
    return _runners[key]


def check_against_reference(out: torch.Tensor, ref: torch.Tensor, precision: str) -> dict:
    out = out.float()
    assert out.shape == ref.shape
    if precision == "fp32":
        err = (out - ref).abs().max().item()
        assert err <= 1e-4 * ref.abs().max().item(), f"max|diff| {err}"
        return {"max_abs_diff": err}
    score = dice((out > 0).numpy(), (ref > 0).numpy())
    assert score >= 0.99, f"mask Dice {score}"
    return {"mask_dice": score}

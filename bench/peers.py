"""Builders for every benchmark entry: each returns ``run(x) -> logits`` for x: [N, C, H, W] float32 on CPU.

alnet_fast entries go through the user's path (``alnet_fast.load(...).logits``); peers run the same
folded network: torch.compile of the folded module, and ONNX Runtime / OpenVINO on the ONNX file that
``alnet_fast.export.export_onnx`` (the `alnet-fast export` command) writes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import torch

import alnet_fast
from alnet_fast.export import INPUT_NAME
from alnet_fast.graph import FoldedALNet

Runner = Callable[[torch.Tensor], torch.Tensor]


def alnet_fast_runner(model: alnet_fast.ALNet, backend: str, dtype: torch.dtype, fold: bool = True) -> Runner:
    return alnet_fast.load(model, backend=backend, device="cpu", dtype=dtype, fold=fold).logits


def torch_compile_runner(folded: FoldedALNet, dtype: torch.dtype = torch.float32) -> Runner:
    """torch.compile (inductor, weights frozen as constants) of the folded model in ``dtype``, channels_last."""
    with warnings.catch_warnings():
        # Importing inductor imports torch.utils.mkldnn, whose classes are built with the deprecated
        # torch.jit.script_method: one DeprecationWarning per method, none of them about our code.
        warnings.filterwarnings("ignore", message="`torch.jit.script_method` is deprecated",
                                category=DeprecationWarning)
        import torch._inductor.compile_fx  # noqa: F401
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    module = folded.to(dtype=dtype, memory_format=torch.channels_last).eval()
    compiled = torch.compile(module, dynamic=False)

    @torch.inference_mode()
    def run(x: torch.Tensor) -> torch.Tensor:
        return compiled(x.to(dtype).contiguous(memory_format=torch.channels_last)).float()

    return run


def onnxruntime_runner(onnx_path: Path) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])


def openvino_runner(onnx_path: Path, precision: str) -> Runner:
    """OpenVINO on CPU; precision "f32" (INFERENCE_PRECISION_HINT, needed for parity) or "bf16" (its default here)."""
    import openvino as ov

    core = ov.Core()
    compiled = {}

    def run(x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in compiled:  # static shapes compile fastest; one compile per benchmarked shape
            model = core.read_model(str(onnx_path))
            model.reshape({INPUT_NAME: list(key)})
            compiled[key] = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                               "PERFORMANCE_HINT": "LATENCY"})
        return torch.from_numpy(compiled[key]({INPUT_NAME: x.numpy()})[0].copy())

    return run

"""Benchmark as a lower SIMD level would run: the non-AMX path (AMD Zen 4/5, pre-AMX Xeons) on an AMX Xeon.

``capped_environment("avx512_bf16")`` caps our CPU kernels (``ALNET_FAST_MAX_ISA``) and oneDNN's
(``ONEDNN_MAX_CPU_ISA``), which both peers that use oneDNN honour: torch's convolutions (so torch.compile's)
and OpenVINO's CPU plugin (checked by ``peer_kernels``: its bf16 convolutions turn from
``brgconv_avx512_amx_bf16`` into ``brgconv_avx512_bf16``). ONNX Runtime's CPU provider runs its own MLAS
kernels, which have no AMX path for fp32, so it needs no cap. The caps must be in the environment before
torch or OpenVINO initialise oneDNN: ``reexec_capped`` restarts the calling script with them.

What a cap cannot emulate: the capped machine keeps this CPU's caches, clocks and memory; a ratio measured
capped is the non-AMX path's ratio on this machine, not on a Zen 5.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys

from alnet_fast.backends.native.extension import ISA_LEVELS, MAX_ISA_ENV

ONEDNN_MAX_CPU_ISA = {"scalar": "SSE41", "avx2": "AVX2", "avx512": "AVX512_CORE",
                      "avx512_bf16": "AVX512_CORE_BF16", "amx_bf16": "AVX512_CORE_AMX"}

_ONEDNN_PROBE = """
import torch
x = torch.randn(1, 32, 16, 16).to(torch.bfloat16, memory_format=torch.channels_last)
conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(torch.bfloat16, memory_format=torch.channels_last)
with torch.no_grad():
    conv(x)
"""


def capped_environment(isa: str) -> dict[str, str]:
    """The variables that cap our kernels and oneDNN's at ``isa`` (one of ISA_LEVELS)."""
    if isa not in ISA_LEVELS:
        raise ValueError(f"unknown ISA level {isa!r}; use one of {ISA_LEVELS}")
    return {MAX_ISA_ENV: isa, "ONEDNN_MAX_CPU_ISA": ONEDNN_MAX_CPU_ISA[isa]}


def reexec_capped(isa: str | None) -> None:
    """Restart this script (same arguments) with ``capped_environment(isa)`` unless it already runs with it."""
    if isa is None:
        return
    env = capped_environment(isa)
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


def torch_onednn_isa() -> str:
    """The ISA torch's oneDNN says it dispatches to under this environment (its verbose 'isa:' line)."""
    out = subprocess.run([sys.executable, "-c", _ONEDNN_PROBE], env={**os.environ, "ONEDNN_VERBOSE": "1"},
                         capture_output=True, text=True, timeout=120).stdout
    return next((line.split("isa:", 1)[1].strip() for line in out.splitlines() if ",isa:" in line), "not reported")


def openvino_conv_kernels(onnx_path: str, precision: str = "bf16") -> dict[str, int]:
    """{primitive type: count} of the convolutions OpenVINO's CPU plugin compiled the model to."""
    import openvino as ov

    model = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": precision})
    kinds = (op.get_rt_info()["primitiveType"].astype(str) for op in model.get_runtime_model().get_ops())
    return dict(collections.Counter(kind for kind in kinds if "conv" in kind))


def peer_kernels(onnx_path: str) -> list[str]:
    """One line per peer: what it actually ran under the current environment."""
    lines = [f"ALNET_FAST_MAX_ISA={os.environ.get(MAX_ISA_ENV, '(unset)')}, "
             f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(unset)')}",
             f"torch (torch.compile's convolutions): oneDNN dispatches to '{torch_onednn_isa()}'"]
    try:
        lines.append(f"openvino bf16 convolutions: {openvino_conv_kernels(onnx_path)}")
    except ImportError:
        lines.append("openvino: not installed")
    lines.append("onnxruntime: not capped (CPU provider: MLAS kernels, no AMX path for fp32)")
    return lines

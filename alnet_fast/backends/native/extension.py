"""The compiled extension: ``alnet_fast._native`` (CPU kernels) and ``alnet_fast._native_cuda`` (CUDA kernels).

Both are optional: setup.py builds them when a C++ compiler (and nvcc) is found and records what it built,
or why not, in ``alnet_fast/_build_status.json``. ``build_info()`` reports that, plus what the
modules say at run time (the SIMD level chosen by cpuid, whether a CUDA device is visible) and which kernel
each CPU conv bound so far runs, and why (choice.py).

``ALNET_FAST_MAX_ISA`` (one of ``ISA_LEVELS``) caps the SIMD level the CPU kernels use, as oneDNN's
``ONEDNN_MAX_CPU_ISA`` caps oneDNN's: on an AMX Xeon, ``ALNET_FAST_MAX_ISA=avx512_bf16`` runs the kernels an
AVX-512 CPU without AMX (AMD Zen 4/5, Ice Lake and Cascade Lake Xeons) runs. A cap at or above the CPU's own
level changes nothing.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import json
import os
from pathlib import Path
from types import ModuleType

from . import choice

PACKAGE_DIR = Path(__file__).resolve().parents[2]  # alnet_fast/, where setup.py puts the modules and status
_STATUS_FILE = PACKAGE_DIR / "_build_status.json"
ISA_LEVELS = ("scalar", "avx2", "avx512", "avx512_bf16", "amx_bf16")  # lowest to highest, as csrc/cpu/isa.cpp
MAX_ISA_ENV = "ALNET_FAST_MAX_ISA"


@functools.lru_cache(maxsize=None)
def _build_status() -> dict:
    try:
        return json.loads(_STATUS_FILE.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        return {"error": f"unreadable {_STATUS_FILE.name}: {exc}"}


@functools.lru_cache(maxsize=None)
def _import(name: str) -> tuple[ModuleType | None, str | None]:
    try:
        return importlib.import_module(f"alnet_fast.{name}"), None
    except ImportError as exc:
        return None, str(exc)


def _missing_reason(part: str, module: str, import_error: str) -> str:
    built = _build_status().get(part, {})
    if built.get("reason"):
        return built["reason"]
    if not _build_status():
        package = PACKAGE_DIR
        if (package.parent / "setup.py").is_file() and (package.parent / "csrc").is_dir():
            return (f"alnet_fast.{module} is not built in this source checkout ({package}), which Python "
                    "imported instead of an installed alnet_fast: run from another directory, or build "
                    "in place with `pip install -e .`")
        return (f"alnet_fast.{module} is not built ({import_error}); build it with `pip install .` "
                f"(needs a C++17 compiler{' and nvcc' if part == 'cuda' else ''})")
    return f"alnet_fast.{module} cannot be imported: {import_error}"


def isa_cap() -> str | None:
    """The SIMD level ``ALNET_FAST_MAX_ISA`` caps the CPU kernels at (None when unset); ValueError naming the
    variable when it names no level."""
    cap = os.environ.get(MAX_ISA_ENV, "").strip().lower() or None
    if cap is not None and cap not in ISA_LEVELS:
        raise ValueError(f"{MAX_ISA_ENV}={os.environ[MAX_ISA_ENV]!r} is not an ISA level; use one of {ISA_LEVELS}")
    return cap


@functools.lru_cache(maxsize=None)
def _apply_isa_cap(module: ModuleType) -> None:
    """``ALNET_FAST_MAX_ISA`` applied to the CPU module, once (later ``set_active_isa`` calls stand)."""
    cap = isa_cap()
    if cap is not None and ISA_LEVELS.index(cap) < ISA_LEVELS.index(module.build_info()["isa_detected"]):
        module.set_active_isa(cap)


def cpu_module() -> ModuleType | None:
    """The CPU kernel module, or None when it was not built (see ``cpu_unavailable_reason``)."""
    module = _import("_native")[0]
    if module is not None:
        _apply_isa_cap(module)
    return module


def cpu_unavailable_reason() -> str | None:
    module, error = _import("_native")
    return None if module is not None else _missing_reason("cpu", "_native", error)


def cuda_module() -> ModuleType | None:
    """The CUDA kernel module, or None when it was not built (see ``cuda_unavailable_reason``)."""
    return _import("_native_cuda")[0]


@functools.lru_cache(maxsize=None)
def _cuda_device_info() -> dict:
    module = cuda_module()
    return module.device_info() if module is not None else {"device_count": 0, "error": None}


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA kernels cannot run here (not built, or no device), or None when they can."""
    module, error = _import("_native_cuda")
    if module is None:
        return _missing_reason("cuda", "_native_cuda", error)
    info = _cuda_device_info()
    if info["device_count"] == 0:
        return f"the CUDA kernels are built but cannot run: {_no_device_reason(info['error'])}"
    return None


@functools.lru_cache(maxsize=None)
def _driver_loadable() -> bool:
    """Whether the NVIDIA driver's user-space library (libcuda) is installed."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _no_device_reason(runtime_error: str | None) -> str:
    """The CUDA runtime's device-count error in plain words: the runtime says "driver version is
    insufficient" also when there is no driver at all (no GPU), which reads like an upgrade would help."""
    if not _driver_loadable():
        return "no NVIDIA driver installed (libcuda not found), so no CUDA device / no GPU"
    return f"no CUDA device usable ({runtime_error})" if runtime_error else "no CUDA device"


def build_info() -> dict:
    """What the native extension was compiled with and what it selected at run time.

    ``{"cpu": {"built", "reason", "compiler", "openmp", "isa_compiled", "isa_detected", "isa_active",
               "conv_kernels", ...},
       "cuda": {"built", "reason", "archs", "nvcc_version", "device_count", "device_error", ...}}``;
    ``reason`` says why a part is not available (None when it is). ``conv_kernels`` (choice.py):
    ``{"mode": $ALNET_FAST_KERNEL_CHOICE, "cache": the choices' file, "cpu": this CPU's identity in it,
    "convs": [{"shape", "isa", "threads", "kernel", "why"}, ...], "bf16_plans": [...]}``, one entry per conv shape
    bound so far in this process: the kernel it runs and why (the measured times, or the rule), and per bf16 input
    shape run so far, whether it runs on the bf16 or the fp32 kernels, and why.
    """
    status = _build_status()
    cpu = {"built": False, "compiler": None, "openmp": False, **status.get("cpu", {})}
    module = cpu_module()
    cpu["built"] = module is not None
    if module is not None:
        cpu.update(module.build_info(), isa_cap=isa_cap())
    cpu["reason"] = cpu_unavailable_reason()
    cpu["conv_kernels"] = {"mode": os.environ.get(choice.MODE_ENV, "measure"),
                           "cache": str(choice.kernel_cache_file()), "cpu": choice.cpu_identity(),
                           "convs": [c.as_dict() for c in choice.PROCESS_CHOICES.report()],
                           "bf16_plans": [c.as_dict() for c in choice.PROCESS_CHOICES.report(choice.PlanKey)]}
    cuda = {"built": False, "archs": [], "nvcc_version": None, **status.get("cuda", {})}
    cuda["built"] = cuda_module() is not None
    device = _cuda_device_info()
    cuda.update(device_count=device["device_count"], device_error=device["error"])
    cuda["reason"] = cuda_unavailable_reason()
    return {"cpu": cpu, "cuda": cuda}

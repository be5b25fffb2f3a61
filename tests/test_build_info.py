"""build_info(): what the native extension compiled and selected, and why anything is missing.

The CI check: where nvcc is on PATH (as on our machines and in CI) the CUDA kernels must have been
compiled, for sm_80 and sm_90 at least, and the module must import here even without a GPU.
"""

import re
import shutil
import subprocess

import pytest
import torch

from alnet_fast import BackendUnavailable
from alnet_fast.backends import get_backend, select_backend
from alnet_fast.backends.native import NativeOps
from alnet_fast.backends.native import extension as native


def _cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_cpu_kernels_built_and_isa_matches_cpuinfo():
    info = native.build_info()["cpu"]
    assert info["built"], info["reason"]
    assert info["reason"] is None and info["openmp"]
    assert info["isa_compiled"] == ["scalar", "avx2", "avx512", "avx512_bf16", "amx_bf16"]
    flags = _cpu_flags()
    avx512_bf16 = {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"} <= flags
    # AMX also needs the kernel's permission (arch_prctl), which every Linux >= 5.16 with these flags grants.
    expected = ("amx_bf16" if avx512_bf16 and {"amx_tile", "amx_bf16"} <= flags else
                "avx512_bf16" if {"avx512f", "avx512bw", "avx512vl", "avx512_bf16"} <= flags else
                "avx512" if {"avx512f", "avx512bw", "avx512vl"} <= flags else
                "avx2" if {"avx2", "fma"} <= flags else "scalar")
    assert info["isa_detected"] == expected
    assert info["isa_active"] == expected
    # Every level from avx512 up runs fp32 convs on the AVX-512 kernel, bf16 on the best bf16 one.
    levels = ["scalar", "avx2", "avx512", "avx512_bf16", "amx_bf16"]
    assert info["conv_kernel_float32"] == (expected if levels.index(expected) < 2 else "avx512")
    assert info["conv_kernel_bfloat16"] == (expected if levels.index(expected) >= 3 else info["conv_kernel_float32"])


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH: CUDA kernels are not expected")
def test_cuda_kernels_compiled_when_nvcc_is_present():
    info = native.build_info()["cuda"]
    assert info["built"], f"nvcc is on PATH but the CUDA kernels were not built: {info['reason']}"
    assert {"sm_80", "sm_90"} <= set(info["archs"])
    release = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout
    assert info["nvcc_version"] == re.search(r"V([\d.]+)", release).group(1)


def test_cuda_reports_why_it_cannot_run():
    info = native.build_info()["cuda"]
    if torch.cuda.is_available():
        assert info["reason"] is None and info["device_count"] >= 1
    elif info["built"]:
        assert info["device_count"] == 0 and "no CUDA device" in info["reason"]
        with pytest.raises(BackendUnavailable, match="no CUDA"):  # the device check: no CUDA torch or device
            get_backend("native", "cuda")
    else:
        assert info["reason"]


def test_missing_extension_is_reported_and_auto_falls_back(monkeypatch):
    monkeypatch.setattr(native, "_import", lambda name: (None, f"No module named 'alnet_fast.{name}'"))
    monkeypatch.setattr(native, "_build_status",
                        lambda: {"cpu": {"built": False, "reason": "no C++ compiler found (set CXX)"}})
    info = native.build_info()
    assert not info["cpu"]["built"] and info["cpu"]["reason"] == "no C++ compiler found (set CXX)"
    assert not info["cuda"]["built"] and "cannot be imported" in info["cuda"]["reason"]
    assert "no C++ compiler" in NativeOps().unavailable_reason(torch.device("cpu"))
    with pytest.raises(BackendUnavailable, match="no C\\+\\+ compiler"):
        get_backend("native", "cpu")
    ops, why = select_backend("auto", "cpu")
    assert ops.name != "native" and "native" in why


def test_native_dtypes_per_device():
    ops = NativeOps()
    assert ops.unavailable_reason(torch.device("cpu"), torch.float32) is None
    assert ops.unavailable_reason(torch.device("cpu"), torch.bfloat16) is None
    assert "float16" in ops.unavailable_reason(torch.device("cpu"), torch.float16)
    assert "mps" in ops.unavailable_reason(torch.device("mps"), torch.float32)



@pytest.fixture
def fresh_cap(monkeypatch):
    """(monkeypatch, the CPU's level): the next cpu_module() call applies ALNET_FAST_MAX_ISA as a fresh import
    would; afterwards the detected level is restored."""
    module = native.cpu_module()
    detected = module.build_info()["isa_detected"]
    native._apply_isa_cap.cache_clear()
    yield monkeypatch, detected
    monkeypatch.delenv(native.MAX_ISA_ENV, raising=False)
    module.set_active_isa(detected)
    native._apply_isa_cap.cache_clear()


def test_max_isa_env_caps_the_kernels_below_the_cpu_level(fresh_cap):
    env, detected = fresh_cap
    levels = native.ISA_LEVELS
    cap = levels[max(levels.index(detected) - 1, 0)]
    env.setenv(native.MAX_ISA_ENV, cap.upper())  # case-insensitive, as ONEDNN_MAX_CPU_ISA
    info = native.build_info()["cpu"]
    assert (info["isa_cap"], info["isa_active"], info["isa_detected"]) == (cap, cap, detected)


def test_max_isa_env_above_the_cpu_level_changes_nothing(fresh_cap):
    fresh_cap[0].setenv(native.MAX_ISA_ENV, native.ISA_LEVELS[-1])
    info = native.build_info()["cpu"]
    assert info["isa_active"] == info["isa_detected"]


def test_max_isa_env_naming_no_level_is_a_clear_error(fresh_cap):
    fresh_cap[0].setenv(native.MAX_ISA_ENV, "avx1024")
    with pytest.raises(ValueError, match="ALNET_FAST_MAX_ISA='avx1024' is not an ISA level"):
        native.cpu_module()

"""Build script: the Python package (Triton kernels included, in alnet_fast/backends/triton/) and the native
extension (csrc/ -> alnet_fast._native, plus alnet_fast._native_cuda when nvcc is found).

The extension is a plain pybind11 module that does not link libtorch, so it needs only a C++17 compiler,
pybind11 and ninja at build time, and one build serves any torch. Every native part is optional: when the
compiler or nvcc is missing or a compile fails, the install still succeeds, prints a warning, and records
why in alnet_fast/_build_status.json, which ``alnet_fast.build_info()`` reports.

Environment: CXX (C++ compiler), NVCC / CUDA_HOME (CUDA compiler), ALNET_NO_CUDA=1 (skip CUDA),
ALNET_CUDA_ARCHS (default "80;90"), ALNET_NATIVE_SANITIZE=address (ASan build, for testing only).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CPU_SOURCES = ["csrc/module.cpp", "csrc/cpu/isa.cpp", "csrc/cpu/conv.cpp", "csrc/cpu/conv_scalar.cpp",
               "csrc/cpu/conv_avx2.cpp", "csrc/cpu/conv_avx512.cpp", "csrc/cpu/conv_avx512_bf16.cpp",
               "csrc/cpu/conv_amx.cpp", "csrc/cpu/bilinear.cpp", "csrc/cpu/bilinear_avx512.cpp",
               "csrc/cpu/lraspp.cpp", "csrc/cpu/lraspp_avx512.cpp", "csrc/cpu/buffers.cpp",
               "csrc/cpu/winograd_avx512.cpp", "csrc/cpu/im2col_avx512.cpp"]
CUDA_SOURCES = ["csrc/cuda/module.cpp", "csrc/cuda/kernels.cu"]
CPU_ISAS = "scalar, avx2, avx512, avx512_bf16, amx_bf16"  # compiled side by side; cpuid picks one at run time
STATUS_FILE = "_build_status.json"


def _warn(message: str) -> None:
    print(f"\n*** alnet_fast: WARNING: {message}\n", file=sys.stderr, flush=True)


def _find_cxx() -> str | None:
    for candidate in (os.environ.get("CXX"), sysconfig.get_config_var("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate.split()[0]
    return None


def _find_nvcc() -> str | None:
    if os.environ.get("ALNET_NO_CUDA") == "1":
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    for candidate in (os.environ.get("NVCC"), home and os.path.join(home, "bin", "nvcc"), "nvcc",
                      "/usr/local/cuda/bin/nvcc"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _nvcc_version(nvcc: str) -> str:
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"release ([\d.]+), V([\d.]+)", out)
    return match.group(2) if match else out.strip().splitlines()[-1]


def _cuda_lib_dir(nvcc: str) -> str:
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), Path(nvcc).resolve().parent.parent,
             "/usr/local/cuda"]
    for home in filter(None, homes):
        for sub in ("lib64", "targets/x86_64-linux/lib", "lib"):
            if (Path(home) / sub / "libcudart_static.a").exists():
                return str(Path(home) / sub)
    raise RuntimeError(f"libcudart_static.a not found under {[str(h) for h in homes if h]} (set CUDA_HOME)")


def _ninja() -> str:
    try:
        import ninja
        return os.path.join(ninja.BIN_DIR, "ninja")
    except ImportError:
        found = shutil.which("ninja")
        if not found:
            raise RuntimeError("ninja is not installed (pip install ninja)")
        return found


class NinjaBuildExt(build_ext):
    """Compiles csrc/ with a generated build.ninja; never fails the install (see the module docstring)."""

    def build_extensions(self) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath("alnet_fast._native")).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        temp = Path(self.build_temp).resolve() / "alnet_native"
        temp.mkdir(parents=True, exist_ok=True)
        includes = [sysconfig.get_paths()["include"], pybind11.get_include(), str(ROOT / "csrc")]
        start = time.time()
        status = {"cpu": self._build_cpu(temp, includes), "cuda": self._build_cuda(temp, includes)}
        (out_dir / STATUS_FILE).write_text(json.dumps(status, indent=2) + "\n")
        print(build_summary(status, time.time() - start), file=sys.stderr, flush=True)
        # Only what was built is an output (an editable install copies every output into the source tree).
        self.extensions = [ext for ext in self.extensions if os.path.exists(self.get_ext_fullpath(ext.name))]

    def copy_extensions_to_source(self) -> None:
        """--inplace and editable installs: the status file goes into the source tree with the modules."""
        super().copy_extensions_to_source()
        package_dir = Path(self.get_finalized_command("build_py").get_package_dir("alnet_fast"))
        built = Path(self.build_lib) / "alnet_fast" / STATUS_FILE
        if built.exists():
            self.copy_file(str(built), str(package_dir / STATUS_FILE), level=self.verbose)

    def _run_ninja(self, temp: Path, text: str, target: str) -> None:
        (temp / "build.ninja").write_text(text)
        jobs = os.environ.get("MAX_JOBS", str(os.cpu_count() or 1))
        result = subprocess.run([_ninja(), "-C", str(temp), "-j", jobs, target], capture_output=True, text=True)
        print(result.stdout[-4000:], file=sys.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"compilation failed:\n{(result.stdout + result.stderr)[-3000:]}")

    def _cxx_flags(self, includes: list[str], openmp: bool) -> str:
        sanitize = os.environ.get("ALNET_NATIVE_SANITIZE")
        # -Wno-maybe-uninitialized: GCC 12 false positives inside its own AVX-512 headers (GCC bug 105593).
        flags = ["-std=c++17", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wno-unknown-pragmas",
                 "-Wno-maybe-uninitialized"]
        flags += (["-O1", "-g", f"-fsanitize={sanitize}", "-fno-omit-frame-pointer"] if sanitize else ["-O3"])
        flags += ["-fopenmp"] if openmp else []
        return " ".join(flags + [f"-I{i}" for i in includes])

    def _ninja_text(self, cxx: str, cxxflags: str, ldflags: str, objects: list[tuple[str, str, str]],
                    output: str, extra: str = "") -> str:
        lines = [f"cxx = {cxx}", f"cxxflags = {cxxflags}", f"ldflags = {ldflags}", extra,
                 "rule cxx", "  command = $cxx -MMD -MF $out.d $cxxflags -c $in -o $out", "  depfile = $out.d",
                 "  deps = gcc",
                 "rule nvcc", "  command = $nvcc $nvccflags -c $in -o $out",
                 "rule link", "  command = $cxx -shared $in -o $out $ldflags"]
        for rule, src, obj in objects:
            lines.append(f"build {obj}: {rule} {ROOT / src}")
        lines.append(f"build {output}: link {' '.join(obj for _, _, obj in objects)}")
        return "\n".join(lines) + "\n"

    def _build_cpu(self, temp: Path, includes: list[str]) -> dict:
        status = {"built": False, "reason": None, "compiler": None, "openmp": False, "seconds": None}
        cxx = _find_cxx()
        if cxx is None:
            status["reason"] = "no C++ compiler found (set CXX, or install g++/clang++) when the package was built"
            _warn(status["reason"] + "; the native backend is unavailable, the others work")
            return status
        status["compiler"] = cxx
        output = str(Path(self.get_ext_fullpath("alnet_fast._native")).resolve())
        start = time.time()
        errors = []
        for openmp in (True, False):
            objects = [("cxx", src, f"cpu_{'omp' if openmp else 'seq'}/{Path(src).stem}.o") for src in CPU_SOURCES]
            sanitize = os.environ.get("ALNET_NATIVE_SANITIZE")
            ldflags = " ".join((["-fopenmp"] if openmp else []) + ([f"-fsanitize={sanitize}"] if sanitize else []))
            text = self._ninja_text(cxx, self._cxx_flags(includes, openmp), ldflags, objects, output)
            try:
                self._run_ninja(temp, text, output)
            except RuntimeError as exc:
                errors.append(f"{'with' if openmp else 'without'} OpenMP: {exc}")
                continue
            status.update(built=True, openmp=openmp, seconds=round(time.time() - start, 1))
            if not openmp:
                _warn(f"built the CPU kernels without OpenMP (single-threaded): {errors[0]}")
            return status
        status["reason"] = f"the C++ compiler {cxx} failed: {' | '.join(errors)[-2000:]}"
        _warn(status["reason"] + "\nthe native backend is unavailable, the others work")
        return status

    def _build_cuda(self, temp: Path, includes: list[str]) -> dict:
        archs = [a.strip() for a in os.environ.get("ALNET_CUDA_ARCHS", "80;90").split(";") if a.strip()]
        status = {"built": False, "reason": None, "nvcc": None, "nvcc_version": None,
                  "archs": [f"sm_{a}" for a in archs], "seconds": None}
        nvcc, cxx = _find_nvcc(), _find_cxx()
        if nvcc is None or cxx is None:
            status["reason"] = ("ALNET_NO_CUDA=1 was set" if os.environ.get("ALNET_NO_CUDA") == "1" else
                                "nvcc not found (set NVCC or CUDA_HOME)" if nvcc is None else "no C++ compiler found")
            print(f"alnet_fast: CUDA kernels not built: {status['reason']}", file=sys.stderr)
            return status
        start = time.time()
        try:
            status.update(nvcc=nvcc, nvcc_version=_nvcc_version(nvcc))
            gencode = " ".join(f"-gencode arch=compute_{a},code=sm_{a}" for a in archs)
            nvccflags = (f"-O3 -std=c++17 -Xcompiler -fPIC,-fvisibility=hidden {gencode} "
                         f"-gencode arch=compute_{archs[-1]},code=compute_{archs[-1]} -I{ROOT / 'csrc'}")
            objects = [("cxx", CUDA_SOURCES[0], "cuda/module.o"), ("nvcc", CUDA_SOURCES[1], "cuda/kernels.o")]
            output = str(Path(self.get_ext_fullpath("alnet_fast._native_cuda")).resolve())
            ldflags = f"-L{_cuda_lib_dir(nvcc)} -lcudart_static -ldl -lrt -lpthread"
            text = self._ninja_text(cxx, self._cxx_flags(includes, False), ldflags, objects, output,
                                    extra=f"nvcc = {nvcc}\nnvccflags = {nvccflags}")
            self._run_ninja(temp, text, output)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as exc:
            status["reason"] = f"CUDA compilation failed: {str(exc)[-2000:]}"
            _warn(status["reason"] + "\nthe CPU kernels are unaffected")
            return status
        status.update(built=True, seconds=round(time.time() - start, 1))
        return status


def build_summary(status: dict, seconds: float) -> str:
    """One paragraph saying what was built and why any part was not (pip shows it with -v)."""
    cpu, cuda = status["cpu"], status["cuda"]
    cpu_text = (f"CPU kernels built with {cpu['compiler']} ({'OpenMP' if cpu['openmp'] else 'no OpenMP'}; "
                f"ISA variants {CPU_ISAS}, chosen at run time)" if cpu["built"] else
                f"CPU kernels NOT built: {cpu['reason']}")
    cuda_text = (f"CUDA kernels built for {', '.join(cuda['archs'])} with nvcc {cuda['nvcc_version']}"
                 if cuda["built"] else f"CUDA kernels not built: {cuda['reason']}")
    return (f"alnet_fast build summary: {cpu_text}; {cuda_text}; {seconds:.0f} s in all. "
            "alnet_fast.build_info() reports this and what runs here.")


setup(
    packages=find_packages(include=["alnet_fast", "alnet_fast.*"]),
    package_data={"alnet_fast": ["weights/*.safetensors", "data/*"]},
    include_package_data=False,
    ext_modules=[Extension("alnet_fast._native", CPU_SOURCES, optional=True),
                 Extension("alnet_fast._native_cuda", CUDA_SOURCES, optional=True)],
    cmdclass={"build_ext": NinjaBuildExt},
)

"""Which kernel each CPU conv runs, and why: Winograd or the direct row kernel chosen by measurement.

The CPU module's fixed rule runs every fp32 3x3 stride-1 conv with Cin, Cout multiples of 16 (>= 32) as
Winograd F(2x2, 3x3) at AVX-512 and above (``conv_uses_winograd``), every other conv on its ISA's row kernel
(im2col for Cin <= 4). Which of Winograd and direct is faster depends on the machine and the shape (small
feature maps deep in the encoder, the batch), so for those convs both are timed the first time a conv of that
shape is bound in a process (``CpuCalls.conv``: by a NativePlan or op by op, so both run the same kernel), on
scratch laid out as a plan binds the conv (``calls.time_winograd_and_direct``, ``time_runs``); direct replaces
Winograd when it is clearly faster (``SWITCH_RATIO``), and the times are cached on disk, keyed by what decides the speed (``ConvKey`` under ``cpu_identity()``). Timed on a machine
that other work keeps busy, close calls can go either way: deleting the cache file measures again.

bf16 plans are measured too: a bf16 request runs on the bf16 kernels (vdpbf16ps or AMX) or, where those are
slower, on the fp32 kernels (Winograd) with the weights' bf16 values (``PlanKey``, ``choose_precision``). On
AVX-512 CPUs whose vdpbf16ps runs at half the rate of fp32 FMAs (an AMX Xeon capped at avx512_bf16 measured
68 vs 34 ms at 512x512), the fp32 kernels win; with AMX, or on Zen 5, bf16 does.

``ALNET_FAST_KERNEL_CHOICE=rule`` turns measuring off: the fixed rule decides (Winograd wherever it may run).
The cache (``kernel_cache_file()``) is a JSON file written atomically; one that cannot be read or written
only costs measuring again (with one warning per process), never a failed inference.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...atomic import atomic_path
from ...paths import default_cache_dir

MODE_ENV = "ALNET_FAST_KERNEL_CHOICE"
MODES = ("measure", "rule")
CACHE_FORMAT = 1
MIN_ROUNDS, MAX_ROUNDS = 2, 50  # timed runs per kernel (time_runs)
ROUNDS_BUDGET_S = 0.1  # past MIN_ROUNDS, timing goes on while it has taken less than this
WINOGRAD_KERNEL = "winograd_avx512"
# direct replaces Winograd (the rule's kernel) only when it takes at most this share of Winograd's time: a closer
# call is within what a busy machine scatters (seen here: one batch-8 shape measured either way in two runs)
SWITCH_RATIO = 0.9
# /proc/cpuinfo flags the kernels dispatch on (csrc/cpu/isa.cpp): part of the CPU's identity
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile", "amx_bf16")


def choice_mode() -> str:
    """$ALNET_FAST_KERNEL_CHOICE: "measure" (the default) or "rule"."""
    mode = os.environ.get(MODE_ENV, "measure")
    if mode not in MODES:
        raise ValueError(f"{MODE_ENV} must be one of {MODES}, not {mode!r}")
    return mode


def kernel_cache_file() -> Path:
    """Where measured choices are kept: cpu-kernel-choices.json in ``paths.default_cache_dir()``."""
    return default_cache_dir() / "cpu-kernel-choices.json"


def cpu_identity_from(cpuinfo: str) -> str:
    """The first processor of /proc/cpuinfo text as "model name | family F model M stepping S | cache size |
    flags": what tells two micro-architectures apart (two CPUs of one vendor, even of one marketing name as
    in VMs, differ in family / model / stepping or flags). Only the flags in CPU_FLAGS are kept."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return " | ".join([fields.get("model name", "?"),
                       f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')} "
                       f"stepping {fields.get('stepping', '?')}",
                       f"cache {fields.get('cache size', '?')}",
                       " ".join(f for f in CPU_FLAGS if f in flags) or "no avx2, avx512 or amx flags"])


@functools.lru_cache(maxsize=None)
def cpu_identity() -> str:
    """This CPU's identity (``cpu_identity_from`` /proc/cpuinfo; where there is none, what ``platform`` says)."""
    try:
        return cpu_identity_from(Path("/proc/cpuinfo").read_text())
    except OSError:
        return f"{platform.processor() or '?'} | {platform.machine()} (no /proc/cpuinfo)"


@dataclass(frozen=True)
class ConvKey:
    """What a conv's speed depends on, the CPU aside: the active ISA level, the OpenMP threads that run it and
    the conv's shape, x [n, h, w, cin] -> [n, ho, wo, cout] with a ksize x ksize kernel at ``stride``."""

    isa: str
    threads: int
    n: int
    h: int
    w: int
    cin: int
    cout: int
    ksize: int
    stride: int
    dtype: str

    @property
    def shape(self) -> str:
        """"n1 h128 w128 cin64 cout64 k3 s1 float32"."""
        return (f"n{self.n} h{self.h} w{self.w} cin{self.cin} cout{self.cout} k{self.ksize} s{self.stride} "
                f"{self.dtype}")

    def __str__(self) -> str:
        return f"{self.isa} threads{self.threads} {self.shape}"


@dataclass(frozen=True)
class PlanKey:
    """What a whole bf16 forward pass's speed depends on, the CPU aside: ISA level, threads, input [n, c, h, w]."""

    isa: str
    threads: int
    n: int
    c: int
    h: int
    w: int

    @property
    def shape(self) -> str:
        """"plan n1 c1 h512 w512 bfloat16"."""
        return f"plan n{self.n} c{self.c} h{self.h} w{self.w} bfloat16"

    def __str__(self) -> str:
        return f"{self.isa} threads{self.threads} {self.shape}"


BF16_KERNELS, FP32_KERNELS = "bf16_kernels", "fp32_kernels"  # a bf16 plan's two ways to run


@dataclass(frozen=True)
class DispatchRule:
    """What the CPU module's fixed rule runs a conv with: its row kernel (``conv_kernel``: "avx512",
    "amx_bf16", ...), whether through im2col (``conv_uses_im2col``) and whether as Winograd (``conv_uses_winograd``
    and fp32)."""

    row_kernel: str
    im2col: bool
    winograd: bool

    @property
    def direct_kernel(self) -> str:
        """The kernel the conv runs without Winograd: "direct_avx512", "im2col_amx_bf16", ..."""
        return f"{'im2col' if self.im2col else 'direct'}_{self.row_kernel}"


@dataclass(frozen=True)
class KernelChoice:
    """The kernel a conv of ``key`` runs ("winograd_avx512", "direct_avx512", "im2col_amx_bf16", ...), or the
    kernels a bf16 plan of ``key`` (a PlanKey) runs (BF16_KERNELS, FP32_KERNELS), and why."""

    key: ConvKey | PlanKey
    kernel: str
    why: str

    @property
    def winograd(self) -> bool:
        return self.kernel == WINOGRAD_KERNEL

    def as_dict(self) -> dict:
        return {"shape": self.key.shape, "isa": self.key.isa, "threads": self.key.threads, "kernel": self.kernel,
                "why": self.why}


def why_not_winograd(key: ConvKey) -> str:
    """The first condition of the Winograd rule (csrc/cpu/conv.cpp ``conv_uses_winograd``, fp32 only) that a conv
    the rule keeps off Winograd fails."""
    if key.dtype != "float32":
        return f"{key.dtype}: Winograd is fp32 only"
    if key.ksize != 3:
        return f"{key.ksize}x{key.ksize}: Winograd is 3x3 only"
    if key.stride != 1:
        return f"stride {key.stride}: Winograd is stride 1 only"
    if not all(c >= 32 and c % 16 == 0 for c in (key.cin, key.cout)):
        return "cin, cout not both multiples of 16 >= 32: too few channels for Winograd's transforms"
    return f"{key.isa}: Winograd needs AVX-512"


def rule_choice(key: ConvKey, rule: DispatchRule) -> KernelChoice:
    """The fixed rule's kernel for a conv, with the rule as the reason."""
    if rule.winograd:
        return KernelChoice(key, WINOGRAD_KERNEL, f"rule ({MODE_ENV}=rule): Winograd for every fp32 3x3 stride-1 "
                                                  "conv with cin, cout multiples of 16 >= 32")
    how = "im2col (cin <= 4: the kxk patches as one 1x1 conv)" if rule.im2col else "direct"
    return KernelChoice(key, rule.direct_kernel, f"{why_not_winograd(key)}; {how} on the {rule.row_kernel} row kernel")


def time_runs(runs: dict[str, Callable[[], None]]) -> dict[str, float]:
    """Seconds per call of each run: its fastest timed call. After one untimed warm-up call each (first touches of
    scratch memory), the runs take turns, so a burst of load on the machine hits them alike: MIN_ROUNDS rounds,
    then more while the timing has taken less than ROUNDS_BUDGET_S, up to MAX_ROUNDS. Short convs, whose times
    a busy machine scatters most (a thread that waits for a core costs a scheduler slice), get the most runs."""
    for run in runs.values():
        run()
    best = {name: float("inf") for name in runs}
    start = time.perf_counter()
    for rounds in range(1, MAX_ROUNDS + 1):
        for name, run in runs.items():
            before = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - before)
        if rounds >= MIN_ROUNDS and time.perf_counter() - start >= ROUNDS_BUDGET_S:
            break
    return best


def measured_why(milliseconds: dict[str, float], kernel: str, where: str) -> str:
    """"measured winograd_avx512 0.410 ms vs direct_avx512 0.550 ms, each its fastest run (<where>)"."""
    others = " vs ".join(f"{name} {ms:.3f} ms" for name, ms in milliseconds.items() if name != kernel)
    return f"measured {kernel} {milliseconds[kernel]:.3f} ms vs {others}, each its fastest run ({where})"


def faster_kernel(milliseconds: dict[str, float], direct: str) -> str:
    """Winograd, unless ``direct`` takes at most SWITCH_RATIO of its time."""
    return direct if milliseconds[direct] <= SWITCH_RATIO * milliseconds[WINOGRAD_KERNEL] else WINOGRAD_KERNEL


def faster_precision(milliseconds: dict[str, float]) -> str:
    """The bf16 kernels, unless the fp32 kernels take at most SWITCH_RATIO of their time."""
    fp32_faster = milliseconds[FP32_KERNELS] <= SWITCH_RATIO * milliseconds[BF16_KERNELS]
    return FP32_KERNELS if fp32_faster else BF16_KERNELS


def _cached_record(record: object, candidates: tuple[str, str]) -> dict[str, float] | None:
    """A cache entry's milliseconds per kernel, {"ms": {kernel: ms}}, if it has both candidates, else None."""
    if not isinstance(record, dict) or not isinstance(record.get("ms"), dict):
        return None
    ms = record["ms"]
    if set(ms) != set(candidates) or not all(isinstance(v, (int, float)) and v >= 0 for v in ms.values()):
        return None
    return {name: float(ms[name]) for name in candidates}


class KernelChoices:
    """The kernel choices of this process (``report()``), measured ones kept in ``kernel_cache_file()``.

    File: {"format": 1, "cpus": {cpu_identity(): {str(ConvKey): {"kernel": ..., "ms": {kernel: ms, ...}}}}}.
    Thread-safe; a measurement holds the lock, so no two run at once.
    """

    def __init__(self):
        self._choices: dict[tuple[str, ConvKey], KernelChoice] = {}  # (mode, key) -> choice
        self._warned: set[str] = set()
        self._lock = threading.RLock()  # a plan timed by choose_precision binds convs, which choose too

    def choose(self, key: ConvKey, rule: DispatchRule, time_kernels: Callable[[], dict[str, float]]
               ) -> KernelChoice:
        """The kernel for a conv of ``key``: the rule's where it keeps the conv off Winograd (or in "rule" mode),
        else the faster of Winograd and direct, from the cache or timed now with ``time_kernels()``
        ({WINOGRAD_KERNEL: seconds, rule.direct_kernel: seconds}) and cached. Decided once per process."""
        mode = choice_mode()
        with self._lock:
            choice = self._choices.get((mode, key))
            if choice is None:
                measured = rule.winograd and mode == "measure"
                choice = (self._decide(key, (WINOGRAD_KERNEL, rule.direct_kernel), time_kernels,
                                       functools.partial(faster_kernel, direct=rule.direct_kernel))
                          if measured else rule_choice(key, rule))
                self._choices[(mode, key)] = choice
            return choice

    def report(self, of: type = ConvKey) -> list[KernelChoice]:
        """Every choice of convs (``of=ConvKey``) or of bf16 plans (``of=PlanKey``) made in this process, in order."""
        with self._lock:
            return [c for c in self._choices.values() if isinstance(c.key, of)]

    def choose_precision(self, key: PlanKey, time_plans: Callable[[], dict[str, float]]) -> KernelChoice:
        """How a bf16 forward pass of ``key`` runs: BF16_KERNELS (always in "rule" mode) or FP32_KERNELS, the
        faster from the cache or timed now with ``time_plans()`` ({BF16_KERNELS: s, FP32_KERNELS: s})."""
        mode = choice_mode()
        with self._lock:
            choice = self._choices.get((mode, key))
            if choice is None:
                choice = (self._decide(key, (BF16_KERNELS, FP32_KERNELS), time_plans, faster_precision)
                          if mode == "measure" else
                          KernelChoice(key, BF16_KERNELS, f"rule ({MODE_ENV}=rule): bf16 inputs run the bf16 kernels"))
                self._choices[(mode, key)] = choice
            return choice

    def _decide(self, key: ConvKey | PlanKey, candidates: tuple[str, str], time_runs_of: Callable[[], dict],
                pick: Callable[[dict[str, float]], str]) -> KernelChoice:
        """``pick`` among ``candidates`` from their cached milliseconds, or from ``time_runs_of()`` (seconds), then
        cached."""
        path = kernel_cache_file()
        cache = self._read(path)
        milliseconds = _cached_record(cache["cpus"].get(cpu_identity(), {}).get(str(key)), candidates)
        if milliseconds is not None:
            kernel = pick(milliseconds)
            return KernelChoice(key, kernel, measured_why(milliseconds, kernel, f"read from {path}"))
        milliseconds = {name: seconds * 1e3 for name, seconds in time_runs_of().items()}
        kernel = pick(milliseconds)
        cache["cpus"].setdefault(cpu_identity(), {})[str(key)] = {"kernel": kernel, "ms": milliseconds}
        where = f"cached in {path}" if self._write(path, cache) else "not cached: the cache file cannot be written"
        return KernelChoice(key, kernel, measured_why(milliseconds, kernel, where))

    def _read(self, path: Path) -> dict:
        """The cache file's contents, re-read each time (another process may have added to it); empty when there
        is none, and when it cannot be read or is not a cache (warned once; the next write replaces it)."""
        try:
            cache = json.loads(path.read_text())
        except (FileNotFoundError, NotADirectoryError):  # none yet (or none can be: _write says so)
            return {"format": CACHE_FORMAT, "cpus": {}}
        except (OSError, ValueError) as error:
            self._warn_once("read", f"the kernel choice cache {path} cannot be read ({error}): measuring again")
            return {"format": CACHE_FORMAT, "cpus": {}}
        if not (isinstance(cache, dict) and cache.get("format") == CACHE_FORMAT and isinstance(cache.get("cpus"), dict)
                and all(isinstance(v, dict) for v in cache["cpus"].values())):
            self._warn_once("read", f"the kernel choice cache {path} is not a format-{CACHE_FORMAT} cache: measuring "
                                    "again; it will be replaced")
            return {"format": CACHE_FORMAT, "cpus": {}}
        return cache

    def _write(self, path: Path, cache: dict) -> bool:
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        except OSError as error:
            self._warn_once("write", f"the kernel choice cache {path} cannot be written ({error}): choices are "
                                     "measured again in every process")
            return False
        return True

    def _warn_once(self, problem: str, message: str) -> None:
        if problem not in self._warned:
            self._warned.add(problem)
            warnings.warn(message, RuntimeWarning, stacklevel=2)


PROCESS_CHOICES = KernelChoices()  # what CpuCalls consults and build_info() reports

"""Tile choice for the implicit-GEMM conv on a GPU: a pinned heuristic per layer shape, autotuning on request.

The default compiles exactly one kernel per layer: ``pinned_tile`` picks the tile from the GEMM shape
(M = N * Ho * Wo, Cout, Cin_pad) and whether tensor cores run it, shrinking tiles until the layer
launches at least one program per SM (the 32x32 and 16x16 layers of a 512x512 image at batch 1 would
otherwise launch a handful of programs on a 132-SM GPU). Autotuning (``ALNET_TRITON_AUTOTUNE=1`` or
``TritonOps(autotune=True)``) times a few tiles around the pinned one per layer *and input size*,
synchronising the device, and stores the winner on disk per device name and Triton version
(``TileCache``), so a later process, and a CUDA graph capture, never tune again.

Every tile runs at 4 warps: non-1x1 conv loops at 8 warps have been miscompiled by Triton
(pytorch#173068, triton#1254), and the flattened taps x Cin loop is such a loop.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import triton

from ...atomic import atomic_path
from ...paths import default_cache_dir

# The tile space: every tile pinned_tile or candidate_tiles returns has its sizes in these sets.
BLOCK_MS = (32, 64, 128)
BLOCK_NS = (16, 32, 64, 128)  # tl.dot needs N >= 16 (the 1-class classifier still gets 16)
BLOCK_KS = (16, 32, 64)  # each divides Cin_pad (a multiple of 16) when chosen by block_k_for
NUM_WARPS = 4
SMEM_BUDGET = 96 * 1024  # bytes of pipelined A + B stages; fits sm_80 (164 KiB) and sm_90 (228 KiB)
AUTOTUNE_ENV = "ALNET_TRITON_AUTOTUNE"


@dataclass(frozen=True)
class Tile:
    """One launch configuration of conv_kernel: a [block_m, block_n] output tile, block_k-deep K steps."""

    block_m: int
    block_n: int
    block_k: int
    num_stages: int
    num_warps: int = NUM_WARPS

    def launch_kwargs(self) -> dict:
        return dict(BLOCK_M=self.block_m, BLOCK_N=self.block_n, BLOCK_K=self.block_k,
                    num_stages=self.num_stages, num_warps=self.num_warps)


@dataclass(frozen=True)
class LayerKey:
    """What a tile choice depends on: the conv's GEMM shape (with N, H, W), its epilogue and its arithmetic."""

    n: int
    h: int
    w: int
    cin: int
    cin_pad: int
    cout: int
    ksize: int
    stride: int
    gate: bool
    dtype: str
    precision: str

    @property
    def m(self) -> int:
        return self.n * triton.cdiv(self.h, self.stride) * triton.cdiv(self.w, self.stride)

    @property
    def elem_bytes(self) -> int:
        return 4 if self.dtype == "float32" else 2

    @property
    def tensor_cores(self) -> bool:
        """fp16 / bf16 always, fp32 with TF32; exact fp32 ("ieee") runs on the FMA units."""
        return self.dtype != "float32" or self.precision == "tf32"

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())


def block_k_for(cin_pad: int, cap: int = 64) -> int:
    """The largest K step in BLOCK_KS, at most ``cap``, that divides cin_pad (so a step never straddles a tap)."""
    return max(k for k in BLOCK_KS if k <= cap and cin_pad % k == 0)


def stages_for(block_m: int, block_n: int, block_k: int, elem_bytes: int) -> int:
    """Pipeline depth: the most stages (4 down to 2) whose A and B tiles fit SMEM_BUDGET."""
    per_stage = (block_m + block_n) * block_k * elem_bytes
    return next((s for s in (4, 3) if s * per_stage <= SMEM_BUDGET), 2)


def _programs(m: int, cout: int, block_m: int, block_n: int) -> int:
    return triton.cdiv(m, block_m) * triton.cdiv(cout, block_n)


def pinned_tile(key: LayerKey, sm_count: int) -> Tile:
    """The default tile of a layer, from its shape alone (no compile, no timing).

    Tensor cores (fp16 / bf16 / TF32) start at 128 x 128, exact fp32 on the FMA units at 64 x 64 (its
    128 x 128 accumulators spill). Then M, and N, are halved down to 32 until the layer launches at least
    ``sm_count`` programs, so small feature maps still fill the GPU. K steps: 64 channels for 2-byte
    operands below 128 x 128, else 32 (compiled for sm_90a, 128 x 128 x 64 fp16 spilled).
    """
    big = key.tensor_cores
    block_n = min(128 if big else 64, max(16, triton.next_power_of_2(key.cout)))
    block_m = 128 if big else 64
    while _programs(key.m, key.cout, block_m, block_n) < sm_count and block_m > 32:
        block_m //= 2
    while _programs(key.m, key.cout, block_m, block_n) < sm_count and block_n > 32:
        block_n //= 2
    block_k = block_k_for(key.cin_pad, cap=64 if key.elem_bytes == 2 and block_m * block_n < 128 * 128 else 32)
    return Tile(block_m, block_n, block_k, stages_for(block_m, block_n, block_k, key.elem_bytes))


def candidate_tiles(key: LayerKey, sm_count: int) -> list[Tile]:
    """What autotuning times for a layer: the pinned tile and its neighbours (every M tile, N halved)."""
    pinned = pinned_tile(key, sm_count)
    block_ns = sorted({pinned.block_n, max(16, pinned.block_n // 2)})
    block_ms = BLOCK_MS if key.tensor_cores else BLOCK_MS[:2]
    tiles = [Tile(bm, bn, pinned.block_k, stages_for(bm, bn, pinned.block_k, key.elem_bytes))
             for bm in block_ms for bn in block_ns]
    return [pinned] + [t for t in tiles if t != pinned]


class TileCache:
    """Tuned tiles on disk, one JSON file per (device name, Triton version): {str(LayerKey): Tile fields}.

    Read once on first use; each new entry rewrites the file atomically (alnet_fast.atomic.atomic_path).
    A corrupt or unreadable file is treated as empty and replaced on the next write.
    """

    def __init__(self, device_name: str, directory: Path | None = None):
        slug = "".join(c if c.isalnum() else "-" for c in device_name).strip("-").lower()
        self.path = (directory or default_cache_dir()) / f"conv-tiles-{slug}-triton{triton.__version__}.json"
        self._tiles: dict[str, Tile] | None = None

    def _load(self) -> dict[str, Tile]:
        if self._tiles is None:
            try:
                raw = json.loads(self.path.read_text())
                self._tiles = {k: Tile(**v) for k, v in raw.items()}
            except (OSError, ValueError, TypeError, AttributeError):
                self._tiles = {}
        return self._tiles

    def get(self, key: LayerKey) -> Tile | None:
        return self._load().get(str(key))

    def put(self, key: LayerKey, tile: Tile) -> None:
        tiles = self._load()
        tiles[str(key)] = tile
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps({k: asdict(t) for k, t in tiles.items()}, indent=1, sort_keys=True))


def autotune_requested(flag: bool | None) -> bool:
    """An explicit flag wins; otherwise ALNET_TRITON_AUTOTUNE=1 turns autotuning on."""
    return flag if flag is not None else os.environ.get(AUTOTUNE_ENV, "") == "1"


def time_launch(launch: Callable[[], None], device: torch.device) -> float:
    """Seconds one call of ``launch`` takes: triton.testing.do_bench on CUDA (synchronises), one timed
    call after a warm-up call elsewhere (the interpreter)."""
    if device.type == "cuda":
        return triton.testing.do_bench(launch, warmup=5, rep=20) / 1e3
    launch()
    start = time.perf_counter()
    launch()
    return time.perf_counter() - start


def tune(key: LayerKey, candidates: list[Tile], launch: Callable[[Tile], None], cache: TileCache,
         device: torch.device) -> Tile:
    """The cached tile for ``key``, or the fastest candidate (timed with ``launch(tile)``), then cached."""
    tile = cache.get(key)
    if tile is None:
        tile = min(candidates, key=lambda t: time_launch(lambda: launch(t), device))
        cache.put(key, tile)
    return tile

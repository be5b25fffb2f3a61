"""Compile the Triton conv for a GPU target on a host without one: registers, stack (spills), compile seconds.

For every conv layer of the default AL-Net at 512x512 (batches 1 and 32) and each arithmetic (fp16, TF32,
exact fp32), the pinned tile (tiles.pinned_tile, 132 SMs as on an H100/H200) is compiled for sm_90a
with the ptxas bundled in the Triton wheel and measured with its cuobjdump. Strides are specialised as
Triton does at run time for channels_last tensors (channel stride 1, other strides divisible by 16).
Compiles go to a fresh Triton cache directory, so each is timed in full. Run WITHOUT TRITON_INTERPRET:

    python bench/triton_compile_check.py > bench/results/triton-sm90a-compile.txt
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="alnet_triton_cache_")  # before triton is imported
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from alnet_fast.backends.triton.conv3x3 import conv_kernel  # noqa: E402
from alnet_fast.backends.triton.tiles import LayerKey, Tile, pinned_tile  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_triton_tiles import model_layers  # noqa: E402  (the layer list the tile tests use)

TARGET = GPUTarget("cuda", 90, 32)
TRITON_TYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}
SCALARS = ["N", "H", "W", "Cin", "Ho", "Wo", "Cout", "sxn", "sxh", "sxw", "sxc", "syn", "syh", "syw", "syc"]
DIVISIBLE = ["x_ptr", "w_ptr", "b_ptr", "gate_ptr", "y_ptr", "sxn", "sxh", "sxw", "syn", "syh", "syw"]


def compile_layer(key: LayerKey, tile: Tile) -> tuple[float, int, int]:
    """(compile seconds, registers per thread, stack bytes per thread) of conv_kernel for key at tile."""
    t = TRITON_TYPES[key.dtype]
    signature = dict(x_ptr=f"*{t}", w_ptr=f"*{t}", b_ptr=f"*{t}", gate_ptr="*fp32", y_ptr=f"*{t}",
                     **{name: "i32" for name in SCALARS})
    constants = dict(sxc=1, syc=1, CIN_PAD=key.cin_pad, KSIZE=key.ksize, STRIDE=key.stride, RELU=True,
                     HAS_GATE=key.gate, INPUT_PRECISION=key.precision, BLOCK_M=tile.block_m,
                     BLOCK_N=tile.block_n, BLOCK_K=tile.block_k)
    signature.update({name: "constexpr" for name in constants})
    names = list(signature)
    divisible = DIVISIBLE if key.cin % 16 == 0 else DIVISIBLE[:5] + ["sxn", "syn", "syh", "syw"]
    source = ASTSource(conv_kernel, signature, constexprs={(names.index(k),): v for k, v in constants.items()},
                       attrs={(names.index(n),): [["tt.divisibility", 16]] for n in divisible})
    start = time.perf_counter()
    kernel = triton.compile(source, target=TARGET, options=dict(num_warps=tile.num_warps, num_stages=tile.num_stages))
    seconds = time.perf_counter() - start
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(kernel.asm["cubin"])
        cubin.flush()
        tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        usage = subprocess.run([str(tool), "-res-usage", cubin.name], capture_output=True, text=True, check=True).stdout
    return seconds, int(re.search(r"REG:(\d+)", usage).group(1)), int(re.search(r"STACK:(\d+)", usage).group(1))


def main() -> None:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise SystemExit("unset TRITON_INTERPRET: this compiles for a GPU target")
    print(f"triton {triton.__version__}, target sm_90a, 132 SMs; seconds on this host")
    print("batch dtype precision | layer (cin cout k stride M) | tile (m n k stages) | compile_s regs stack")
    for batch, dtype, precision in [(1, "float16", "tf32"), (32, "float16", "tf32"), (1, "float32", "tf32"),
                                    (1, "float32", "ieee"), (32, "float32", "ieee")]:
        seen, total = set(), 0.0
        for key in model_layers(batch, 512, dtype, precision):
            tile = pinned_tile(key, 132)
            if (key.cin, key.cout, key.ksize, key.stride, tile) in seen:
                continue
            seen.add((key.cin, key.cout, key.ksize, key.stride, tile))
            seconds, regs, stack = compile_layer(key, tile)
            total += seconds
            print(f"{batch} {dtype} {precision} | {key.cin} {key.cout} {key.ksize} {key.stride} {key.m} | "
                  f"{tile.block_m} {tile.block_n} {tile.block_k} {tile.num_stages} | {seconds:.1f} {regs} {stack}",
                  flush=True)
        print(f"{batch} {dtype} {precision} | {len(seen)} kernels, {total:.1f} s of compiles", flush=True)


if __name__ == "__main__":
    main()

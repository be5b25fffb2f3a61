"""The Triton backend: the op table (ops.py, TritonOps) and its kernels, one module per kernel family.

- conv3x3: implicit-GEMM conv (3x3 stride 1/2, and 1x1 as one tap) + bias + ReLU (+ gate), NHWC,
  prepacked weights, one pipelined loop over taps x Cin blocks.
- lraspp_gate: global mean, hard-sigmoid gate mat-vec, then the gated 1x1 conv GEMM.
- bilinear: bilinear resize (align_corners=False), optionally fused with the decoder's skip add.
- tiles: the conv's tile per layer (pinned heuristic; autotuning on request, cached on disk).
- runtime: interpreter detection, device context.

``import alnet_fast`` imports only this file (no triton); importing the kernel modules needs triton but no
GPU (``ops`` imports without triton and reports it as the reason the backend is unavailable).
"""

# tl.dot input precision for fp32 operands: "tf32" (the default) runs on tensor cores with operands
# rounded to 10-bit mantissas (~1e-3 relative error); "ieee" is exact fp32 on the FMA units.
# fp16/bf16 operands ignore it.
INPUT_PRECISIONS = ("tf32", "ieee")


def check_input_precision(input_precision: str) -> str:
    if input_precision not in INPUT_PRECISIONS:
        raise ValueError(f"input_precision must be one of {INPUT_PRECISIONS}, got {input_precision!r}")
    return input_precision

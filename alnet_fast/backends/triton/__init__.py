"""The Triton backend: the op table (ops.py, TritonOps) and its kernels, one module per kernel family.

- conv3x3: implicit-GEMM conv (3x3 stride 1/2, and 1x1 as one tap) + bias + ReLU (+ gate), NHWC,
  prepacked weights, lazily autotuned per device.
- lraspp_gate: global mean, hard-sigmoid gate mat-vec, then the gated 1x1 conv GEMM.
- bilinear: bilinear resize (align_corners=False), optionally fused with the decoder's skip add.
- runtime: interpreter detection, lazy per-device autotuners, device context.

Nothing here is imported by ``import alnet_fast``; importing the kernel modules needs triton but no GPU
(``ops`` imports without triton and reports it as the reason the backend is unavailable).
"""

"""Where the time goes: alnet_fast's ops one by one, next to OpenVINO's per-node counters, interleaved.

Each round runs alnet_fast's folded model once op by op through a timing wrapper around its op table,
once as users run it (``ops.run``: on CPU the native backend's NativePlan, which skips the per-op dispatch
and padding copies the op-by-op rows include), then the OpenVINO model once with PERF_COUNT; every op's
and node's minimum over the rounds is printed in execution order. OpenVINO's counters add their own overhead (their sum exceeds its wall time), so
compare its rows with ours as rough per-layer figures; the two totals are wall times.

    python bench/profile_ops.py [--backend native] [--precision bf16] [--size 512x512] [--rounds 15]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import alnet_fast
from alnet_fast.export import INPUT_NAME
from entries import folded_onnx_path
from workload import SIZES, bench_input, bench_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


class TimedOps:
    """Wraps an op table: every call is timed and recorded as (op and shapes, seconds), in call order."""

    def __init__(self, ops):
        self.ops, self.calls = ops, []

    def __getattr__(self, name):
        op = getattr(self.ops, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            y = op(*args, **kwargs)
            shapes = f"{tuple(args[0].shape[1:])} -> {tuple(y.shape[1:])}"
            self.calls.append((f"{name} {shapes}", time.perf_counter() - start))
            return y

        return timed


def elementwise_min(best: list | None, new: list) -> list:
    return new if best is None else [(key, min(a, b)) for (key, a), (_, b) in zip(best, new)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="native")
    parser.add_argument("--precision", choices=list(DTYPES), default="bf16")
    parser.add_argument("--size", choices=list(SIZES), default="512x512")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    import openvino as ov

    dtype = DTYPES[args.precision]
    x = bench_input(args.size, 1)
    seg = alnet_fast.load(bench_model(), backend=args.backend, device="cpu", dtype=dtype)
    model_input = x.to(dtype).contiguous(memory_format=torch.channels_last)
    core = ov.Core()
    network = core.read_model(str(folded_onnx_path()))
    network.reshape({INPUT_NAME: list(x.shape)})
    request = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[args.precision],
                                                  "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
                                 ).create_infer_request()
    feed = {INPUT_NAME: np.ascontiguousarray(x.numpy())}
    ours = theirs = None
    totals = {"alnet_fast": float("inf"), "alnet_fast run": float("inf"), "openvino": float("inf")}
    with torch.inference_mode():
        seg.ops.run(seg.model, model_input)
        seg.ops.run(seg.model, model_input)
        request.infer(feed)
        for _ in range(args.rounds):
            timed = TimedOps(seg.ops)
            start = time.perf_counter()
            seg.model(model_input, timed)
            totals["alnet_fast"] = min(totals["alnet_fast"], time.perf_counter() - start)
            ours = elementwise_min(ours, timed.calls)
            start = time.perf_counter()
            seg.ops.run(seg.model, model_input)
            totals["alnet_fast run"] = min(totals["alnet_fast run"], time.perf_counter() - start)
            start = time.perf_counter()
            request.infer(feed)
            totals["openvino"] = min(totals["openvino"], time.perf_counter() - start)
            nodes = [(f"{p.node_name} [{p.exec_type}]", p.real_time.total_seconds())
                     for p in request.profiling_info if p.real_time.total_seconds() > 0]
            theirs = elementwise_min(theirs, nodes)
    print(f"{args.size} batch 1 {args.precision}, min of {args.rounds} interleaved rounds: alnet_fast {args.backend} "
          f"op by op {totals['alnet_fast'] * 1e3:.1f} ms (ops sum {sum(s for _, s in ours) * 1e3:.1f}), as run "
          f"{totals['alnet_fast run'] * 1e3:.1f} ms, openvino "
          f"{totals['openvino'] * 1e3:.1f} ms (nodes sum {sum(s for _, s in theirs) * 1e3:.1f})")
    for who, rows in (("alnet_fast", ours), ("openvino", theirs)):
        print(who)
        for key, seconds in rows:
            print(f"  {seconds * 1e3:7.2f} ms  {key}")


if __name__ == "__main__":
    main()

"""Drift-robust ratios: every end-to-end entry timed in alternation, round after round, in one process.

pytest-benchmark times one entry after another, so on a shared VM whose speed drifts (seen here: the
same entry 2.5x apart within an hour) ratios between entries measured minutes apart drift too. Here
each round runs every entry once, and each entry's minimum over the rounds is compared. A pause
before each timed call lets the previous runtime's worker threads stop spinning (ONNX Runtime and
OpenMP pools spin-wait after a run, which would otherwise steal the 2 cores from the next entry).

    python bench/interleaved.py [--size 512x512] [--batch 1] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from test_end_to_end import ENTRIES, check_against_reference, runner_for
from workload import SIZES, bench_input, reference_logits

PAUSE_S = 0.5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="512x512")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    x, ref = bench_input(args.size, args.batch), reference_logits(args.size, args.batch)
    runners = {}
    with torch.inference_mode():
        for entry in ENTRIES:
            try:
                run = runner_for(entry)
                check_against_reference(run(x), ref, entry.precision)
            except BaseException as exc:  # pytest.skip raises a BaseException subclass
                print(f"{entry.name} {entry.precision}: not timed ({type(exc).__name__}: {exc})")
                continue
            runners[f"{entry.name} {entry.precision}"] = run
        times = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, run in runners.items():
                time.sleep(PAUSE_S)
                start = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    middle = {name: statistics.median(t) for name, t in times.items()}
    base, base_middle = best.get("onnxruntime fp32"), middle.get("onnxruntime fp32")
    print(f"{args.size} batch {args.batch}, {args.rounds} interleaved rounds: min and median, each as a ratio to "
          f"onnxruntime fp32's")
    for name, seconds in sorted(best.items(), key=lambda kv: kv[1]):
        ratios = f"{seconds / base:.2f} {middle[name] / base_middle:.2f}" if base else "- -"
        print(f"  {name:28s} min {seconds * 1e3:7.1f} ms  median {middle[name] * 1e3:7.1f} ms   ratios {ratios}")


if __name__ == "__main__":
    main()

"""Drift-robust ratios: every end-to-end entry timed in alternation, round after round, in one process.

pytest-benchmark times one entry after another, so on a shared VM whose speed drifts (seen here: the
same entry 2.5x apart within an hour) ratios between entries measured minutes apart drift too. Here
each round runs every entry once (in alternating order), and each entry's minimum over the rounds is
compared. The VM also switches between fast and slow spells within seconds (the same entry 2x apart
from one round to the next), which medians taken over all rounds mix in unevenly; the paired column is
the median over rounds of each round's own ratio (entry / baseline, timed seconds apart), which such
spells cancel out of as long as they last longer than a round. A pause before each timed call lets the
previous runtime's worker threads stop spinning (ONNX Runtime and OpenMP pools spin-wait after a run,
which would otherwise steal the 2 cores from the next entry).

    python bench/interleaved.py [--size 512x512] [--batch 1] [--rounds 15] [--baseline "openvino bf16"]
                                [--entries "alnet_fast native bf16,openvino bf16"] [--isa avx512_bf16]

--isa caps our kernels and oneDNN's (torch.compile, OpenVINO) at a lower SIMD level (bench/isa_cap.py):
``--isa avx512_bf16`` on an AMX Xeon measures the path AVX-512 CPUs without AMX run. The run starts by
printing what each peer actually dispatched to.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from entries import ENTRIES, check_against_reference, folded_onnx_path, runner_for
from isa_cap import peer_kernels, reexec_capped
from workload import SIZES, bench_input, reference_logits

PAUSE_S = 0.5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="512x512")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--baseline", default="onnxruntime fp32", help="the entry every ratio is taken to")
    parser.add_argument("--entries", help='comma-separated entries to time (default: all), e.g. '
                                          '"alnet_fast native bf16,openvino bf16"')
    parser.add_argument("--isa", help="cap our kernels and oneDNN's at this level, e.g. avx512_bf16 (no AMX)")
    args = parser.parse_args(argv)
    reexec_capped(args.isa)
    import alnet_fast

    print(f"# native kernels: {alnet_fast.build_info()['cpu']['isa_active']}; peers: "
          + "; ".join(peer_kernels(folded_onnx_path())))
    x, ref = bench_input(args.size, args.batch), reference_logits(args.size, args.batch)
    runners = {}
    with torch.inference_mode():
        chosen = args.entries.split(",") if args.entries else None
        for entry in ENTRIES:
            if chosen and f"{entry.name} {entry.precision}" not in chosen:
                continue
            try:
                run = runner_for(entry)
                check_against_reference(run(x), ref, entry.precision)
            except BaseException as exc:  # pytest.skip raises a BaseException subclass
                print(f"{entry.name} {entry.precision}: not timed ({type(exc).__name__}: {exc})")
                continue
            runners[f"{entry.name} {entry.precision}"] = run
        times = {name: [] for name in runners}
        order = list(runners.items())
        for i in range(args.rounds):
            for name, run in order if i % 2 == 0 else order[::-1]:  # alternate: no entry always runs first
                time.sleep(PAUSE_S)
                start = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - start)
    report(times, args.baseline, f"{args.size} batch {args.batch}, {args.rounds} interleaved rounds")
    for plan in alnet_fast.build_info()["cpu"]["conv_kernels"]["bf16_plans"]:
        print(f"# native bf16 {plan['shape']}: {plan['kernel']} ({plan['why']})")


def report(times: dict[str, list[float]], baseline: str, title: str) -> None:
    """Print each entry's min and median (ms), and its min, median and paired ratios to ``baseline``."""
    base = times.get(baseline)
    if base:
        print(f"{title}; ratios to {baseline}'s: by min, by median, and paired (the median of per-round ratios)")
    else:
        print(f"{title}; no ratios: the baseline {baseline!r} was not timed (choose one of {sorted(times)})")
    for name, t in sorted(times.items(), key=lambda kv: min(kv[1])):
        ratios = "-    -    -"
        if base:
            paired = statistics.median(a / b for a, b in zip(t, base))
            ratios = f"{min(t) / min(base):.2f} {statistics.median(t) / statistics.median(base):.2f} {paired:.2f}"
        print(f"  {name:28s} min {min(t) * 1e3:7.1f} ms  median {statistics.median(t) * 1e3:7.1f} ms   "
              f"ratios {ratios}")


if __name__ == "__main__":
    main()

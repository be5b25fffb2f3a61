"""End-to-end latency: every alnet_fast path and every peer, side by side, on the same input.

Each entry is first checked once against the multi-branch fp32 reference (a fast wrong answer does
not count): fp32 entries by max|diff| <= 1e-4 * max|ref| (different but exact-arithmetic
implementations: only accumulation order differs), bf16 entries by mask Dice >= 0.99. An alnet_fast
entry that fails its check fails the suite; a peer that fails it is reported as xfail with the
measured error and not timed.

    pytest bench/ --benchmark-only --benchmark-json=results.json
    python bench/report.py results.json
"""

from __future__ import annotations

import pytest
import torch

from entries import ENTRIES, check_against_reference, runner_for
from workload import BATCHES, SIZES, bench_input, model_stats, reference_logits

ROUNDS = {1: 20, 8: 5}


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: f"b{b}")
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.name}-{e.precision}".replace(" ", "_"))
def test_latency(benchmark, entry, size, batch):
    run = runner_for(entry)
    x = bench_input(size, batch)
    with torch.inference_mode():
        try:
            check = check_against_reference(run(x), reference_logits(size, batch), entry.precision)
        except AssertionError as exc:
            if entry.backend is not None:
                raise
            pytest.xfail(f"{entry.name} {entry.precision} gives a wrong answer, not timed: {exc}")
    benchmark.group = f"{size} batch {batch}"
    benchmark.extra_info.update(entry=entry.name, precision=entry.precision, size=size, batch=batch,
                                **check, **model_stats())
    with torch.inference_mode():  # minima of more rounds drift less on a shared VM; batch 8 costs 8x per round
        benchmark.pedantic(run, args=(x,), rounds=ROUNDS[batch], warmup_rounds=1)

"""parallel_for (csrc/cpu/parallel.cpp), the CPU kernels' thread pool, through the kernels that use it.

Every chunk of work computes the same values whichever thread runs it, so results must be bit-identical with
1 or more threads, from several Python threads calling at once (the GIL is released in kernels; calls take
turns), and in a forked child (which has none of its parent's workers and starts a pool of its own).
"""

import multiprocessing
import threading

import pytest
import torch

from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")


def _case(seed: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    # batch 2, odd sizes: more chunks than threads, chunks that split images; 64 -> 48 channels (Winograd in fp32)
    x = torch.randn(2, 64, 37, 29, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(48, 64, 3, 3, generator=g) / 24).to(dtype)
    return x, w, torch.randn(48, generator=g).to(dtype)


def _case_with_skip(seed: int, dtype: torch.dtype):
    return (*_case(seed, dtype), torch.zeros(2, 48, 74, 58, dtype=dtype).contiguous(memory_format=torch.channels_last))


def _model_ops(ops: NativeOps, x, w, b, skip) -> torch.Tensor:
    """A conv, the Lite R-ASPP gate and an upsample+add: every kernel family that runs parallel_for."""
    y = ops.conv3x3_bias_relu(x, w, b, 1, True)
    gate = ops.lraspp_gate(y, w[:, :48, :1, :1].contiguous(), b, w[:, :48, 1:2, 1:2].contiguous(), b)
    return ops.upsample_add(gate, skip)


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_threads_give_identical_results(dtype, restore_threads):
    ops = NativeOps()
    args = _case_with_skip(0, dtype)
    with torch.inference_mode():
        torch.set_num_threads(1)  # parallel_threads() follows OpenMP's max threads, which this sets
        single = _model_ops(ops, *args)
        for threads in (2, 3):
            torch.set_num_threads(threads)
            assert torch.equal(_model_ops(ops, *args), single), f"{threads} threads differ from 1"


def test_concurrent_python_threads():
    ops = NativeOps()
    cases = [_case_with_skip(seed, torch.float32) for seed in range(4)]
    with torch.inference_mode():
        expected = [_model_ops(ops, *case) for case in cases]
        results = [None] * len(cases)

        def work(i):
            for _ in range(3):
                results[i] = _model_ops(ops, *cases[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a kernel call hung"
    for i, (got, want) in enumerate(zip(results, expected)):
        assert torch.equal(got, want), f"thread {i}"


_FORK_CASE = _case_with_skip(1, torch.float32)


def _child(queue):
    # torch's own OpenMP regions hang in a forked child of a parent that used them (libgomp): torch runs on one
    # thread here (the inputs are made in the parent), the pool on two.
    ops = NativeOps()
    with torch.inference_mode():
        torch.set_num_threads(1)
        _model_ops(ops, *_FORK_CASE)  # packs the weights
        torch.set_num_threads(2)
        queue.put(_model_ops(ops, *_FORK_CASE).numpy())  # by value: a tensor would travel as a shared fd


def test_forked_child_runs_kernels(restore_threads):
    torch.set_num_threads(2)
    with torch.inference_mode():
        expected = _model_ops(NativeOps(), *_FORK_CASE)  # the parent's pool has started
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    got = torch.from_numpy(queue.get(timeout=120))
    child.join(timeout=60)
    assert child.exitcode == 0
    assert torch.equal(got, expected)

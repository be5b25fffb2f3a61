"""CUDA graph capture and replay (alnet_fast.cuda_graphs) and its Segmenter / load() wiring.

On CPU, ``GraphedForward``'s bookkeeping runs with ``eager_replay`` in place of a CUDA graph: like a graph,
its replay recomputes a fixed output buffer from the fixed input buffer only (never from the caller's
tensor), so a missing copy-in or a graph reused across shapes gives stale or wrong outputs here too.
The real captures run on a GPU only (skipped here with the reason).
"""

import pytest
import torch

import alnet_fast
from alnet_fast.cuda_graphs import GraphedForward
from alnet_fast.testing import random_alnet
from conftest import requires_cuda


def eager_replay(fn, static_input, warmup):
    """A CPU stand-in for capture_cuda_graph: the output buffer is refilled from static_input on replay."""
    for _ in range(warmup):
        fn(static_input)
    static_output = fn(static_input).clone()
    return static_output, lambda: static_output.copy_(fn(static_input))


def make_graphed(fn, **kwargs):
    """(GraphedForward over fn with eager_replay, the list of input shapes captured so far)."""
    captures = []

    def capture(fn, static_input, warmup):
        captures.append(tuple(static_input.shape))
        return eager_replay(fn, static_input, warmup)

    return GraphedForward(fn, capture=capture, **kwargs), captures


def test_replay_reads_each_new_input():
    graphed, captures = make_graphed(lambda x: 2 * x + 1)
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(graphed(a), 2 * a + 1)
    assert torch.equal(graphed(b), 2 * b + 1)  # same graph, new input copied in
    assert captures == [(2, 3, 4, 4)]


def test_one_graph_per_shape_and_dtype_least_recently_used_dropped():
    graphed, captures = make_graphed(lambda x: x * 3, warmup=1, max_graphs=2)
    x = torch.randn(1, 3, 8, 8)
    graphed(x), graphed(x.half()), graphed(x)
    assert graphed.captured == [((1, 3, 8, 8), torch.float16, x.device), ((1, 3, 8, 8), torch.float32, x.device)]
    assert len(captures) == 2  # the third call replays the first graph
    y = graphed(torch.ones(2, 3, 8, 8))  # a third key evicts the least recently used (float16)
    assert torch.equal(y, torch.full((2, 3, 8, 8), 3.0))
    assert [k[0] for k in graphed.captured] == [(1, 3, 8, 8), (2, 3, 8, 8)]


def test_a_changed_state_recaptures():
    weight = torch.ones(1)
    graphed, captures = make_graphed(lambda x: x * weight, state=lambda: weight._version)
    x = torch.randn(4)
    graphed(x)
    weight.mul_(5)  # what a graph baked in changed: its replay must not serve the old weight
    assert torch.equal(graphed(x), 5 * x) and len(captures) == 2


def test_a_failed_capture_warns_once_and_runs_eagerly():
    def failing_capture(fn, static_input, warmup):
        raise RuntimeError("operation not permitted when stream is capturing")

    graphed = GraphedForward(lambda x: x + 1, capture=failing_capture)
    x = torch.randn(3)
    with pytest.warns(RuntimeWarning, match="not permitted when stream is capturing.*cuda_graphs=False"):
        assert torch.equal(graphed(x), x + 1)
    assert "not permitted" in graphed.capture_error and graphed.captured == []
    assert torch.equal(graphed(2 * x), 2 * x + 1)  # eager from now on, without another attempt or warning


def test_max_graphs_is_checked():
    with pytest.raises(ValueError, match="max_graphs"):
        GraphedForward(lambda x: x, max_graphs=0)


def test_cuda_graphs_off_on_cpu_by_default_and_refused_when_asked():
    model = random_alnet(seed=1)
    seg = alnet_fast.load(model, backend="torch", device="cpu")
    assert seg.graphs is None and seg.dtype == torch.float32 and "cuda_graphs=False" in repr(seg)
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        alnet_fast.load(model, backend="torch", device="cpu", cuda_graphs=True)
    with pytest.raises(ValueError, match="input_precision"):
        alnet_fast.load(model, backend="torch", device="cpu", input_precision="fp8")


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_segmenter_replays_real_cuda_graphs_with_changing_inputs(backend):
    model = random_alnet(seed=2)
    graphed = alnet_fast.load(model, backend=backend, device="cuda", dtype=torch.float16)
    eager = alnet_fast.load(model, backend=backend, device="cuda", dtype=torch.float16, cuda_graphs=False)
    assert graphed.graphs is not None
    for seed in range(3):  # the first call captures, the next two replay with new inputs
        x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(seed))
        out, ref = graphed.logits(x), eager.logits(x)
        if backend == "triton":  # the same kernels and tiles on the same inputs: bit for bit
            assert torch.equal(out, ref)
        else:  # cuDNN may pick another algorithm under capture: fp16 storage bound (2^-11), doubled
            assert (out - ref).abs().max().item() <= 1e-3 * ref.abs().max().item()
    graphed.logits(torch.randn(1, 3, 64, 64))
    assert len(graphed.graphs.captured) == 2

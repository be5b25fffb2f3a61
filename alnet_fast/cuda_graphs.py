"""CUDA graphs for a whole forward pass: captured once per input shape and dtype, replayed after.

A folded AL-Net forward is ~35 kernel launches and about a millisecond of Python; at batch 1 the GPU
waits on the host. ``GraphedForward(fn)`` runs ``fn`` a few times on a side stream (Triton compiles its
kernels and, when asked, autotunes there: both synchronise, so they must precede capture), captures one
call into a CUDA graph with a static input buffer, and from then on copies each input into that buffer
and replays the graph: one launch, no Python per op.

Correctness rules it keeps:
- one graph per (shape, dtype, device) of the input (least recently used dropped beyond ``max_graphs``);
- each call copies its input into the graph's static buffer, so inputs may change between replays;
- the output is the graph's static buffer, overwritten by the next call: copy it before calling again
  (Segmenter.logits does: ``.float().cpu()``);
- ``state()`` (e.g. the weights' stamps) is compared at each call; when it changed, every graph is
  dropped and recaptured, since a graph replays the kernels, weights and packed weights it captured;
- a forward that cannot be captured (a kernel that synchronises or allocates outside PyTorch) warns
  once, naming the error, and runs eagerly from then on: slower, never wrong.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]
# capture(fn, static_input, warmup) -> (static output, replay): runs fn(static_input) so that replay()
# recomputes the static output from whatever static_input then holds.
Capture = Callable[[Forward, torch.Tensor, int], "tuple[torch.Tensor, Callable[[], None]]"]


def capture_cuda_graph(fn: Forward, static_input: torch.Tensor, warmup: int) -> tuple[torch.Tensor, Callable[[], None]]:
    """Warm ``fn`` up on a side stream ``warmup`` times, then capture ``fn(static_input)`` in a CUDA graph."""
    device = static_input.device
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(static_input)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = fn(static_input)
    return static_output, graph.replay


@dataclass
class CapturedForward:
    """One captured graph: its static input [N, C, H, W] and output buffers and how to replay it."""

    static_input: torch.Tensor
    static_output: torch.Tensor
    replay: Callable[[], None]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.static_input.copy_(x)
        self.replay()
        return self.static_output


class GraphedForward:
    """``fn`` (x: [N, C, H, W] -> tensor) through graphs captured per input (shape, dtype, device).

    capture: how one graph is made (``capture_cuda_graph``); state: a hashable snapshot of what the
    graphs baked in (weights), checked each call; warmup: eager calls before each capture.
    """

    def __init__(self, fn: Forward, state: Callable[[], Hashable] = lambda: None, warmup: int = 2,
                 max_graphs: int = 8, capture: Capture = capture_cuda_graph):
        if max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {max_graphs}")
        self.fn, self.state, self.warmup, self.max_graphs, self.capture = fn, state, warmup, max_graphs, capture
        self._graphs: OrderedDict[tuple, CapturedForward] = OrderedDict()
        self._state: Hashable = None
        self.capture_error: str | None = None  # set when a capture failed: every call then runs fn eagerly

    @staticmethod
    def key(x: torch.Tensor) -> tuple:
        return tuple(x.shape), x.dtype, x.device

    @property
    def captured(self) -> list[tuple]:
        """Keys of the graphs held, least recently used first."""
        return list(self._graphs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.capture_error is not None:
            return self.fn(x)
        state = self.state()
        if state != self._state:
            self._graphs.clear()
            self._state = state
        key = self.key(x)
        graph = self._graphs.get(key)
        if graph is None:
            static_input = torch.empty_like(x)  # keeps x's memory format
            static_input.copy_(x)
            try:
                graph = CapturedForward(static_input, *self.capture(self.fn, static_input, self.warmup))
            except RuntimeError as exc:
                self.capture_error = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"CUDA graph capture failed ({self.capture_error}); running eagerly from now on "
                              f"(pass cuda_graphs=False to skip the attempt)", RuntimeWarning, stacklevel=2)
                self._graphs.clear()
                return self.fn(x)
            self._graphs[key] = graph
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        return graph(x)

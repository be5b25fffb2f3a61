"""NativePlan: a folded model's whole forward pass on the CPU kernels, bound once per input shape.

Running the graph op by op through the op table costs two things the kernels do not need:
- the table's argument checks, layout conversions, output allocations and weight-pack lookups on every op;
- a copy of every 3x3 conv's input into a zero-padded scratch buffer.
A plan records the op sequence once (``record_ops``, on meta tensors), gives every activation a preallocated
NHWC buffer, and binds each kernel call to its buffers (``CpuCalls``). An activation that only
convs read, one of them 3x3, lives inside a zero border of one pixel that its producer writes around
(y_pad), zeroing the border, and its readers read in place (x_pad). Activations whose lifetimes do not
overlap share a buffer, whatever their shapes (``share_buffers``): fewer bytes to bring into the caches on
each call (README gives the memory a plan holds). A forward pass is then one
copy of the input, one call per op, and the output's allocation.

The kernels and their arithmetic are the op table's: a plan's output is bit-identical to the op-by-op run (each
conv runs the kernel the process chose for its shape, choice.py, on either path; ``kernel_report()`` lists them).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

import torch

from ..spec import out_shape
from ..stamps import stamp
from . import extension

CONV_OPS = ("conv3x3_bias_relu", "conv1x1_bias_relu")


@dataclass(frozen=True)
class OpNode:
    """One recorded op call: ``op`` on the values ``inputs`` (indices; 0 is the graph input) with ``params``
    (weights, strides, flags, sizes), producing value ``output`` of ``shape`` [N, C, H, W]."""

    op: str
    inputs: tuple[int, ...]
    params: tuple
    output: int
    shape: tuple[int, int, int, int]


class _Recorder:
    """An op table that computes nothing: each op call is appended to ``nodes`` and returns a meta tensor of
    the op's output shape (``spec.out_shape``), which later calls name as their input. ``params`` keep the
    op's non-activation arguments; a 1x1 conv's stride (1) is added so every conv reads (w, b, stride, relu)."""

    def __init__(self, x: torch.Tensor):
        self._values = {id(x): 0}
        self._alive = [x]  # keeps the ids of recorded values unique
        self.nodes: list[OpNode] = []

    def _record(self, op: str, tensors: tuple[torch.Tensor, ...], params: tuple, *args) -> torch.Tensor:
        shape = out_shape(op, *tensors[:1], *args)
        out = torch.empty(shape, device="meta")
        self._values[id(out)] = len(self._values)
        self._alive.append(out)
        self.nodes.append(OpNode(op, tuple(self._values[id(t)] for t in tensors), params,
                                 self._values[id(out)], shape))
        return out

    def conv3x3_bias_relu(self, x, weight, bias, stride=1, relu=True):
        return self._record("conv3x3_bias_relu", (x,), (weight, bias, stride, relu), weight, bias, stride, relu)

    def conv1x1_bias_relu(self, x, weight, bias, relu=True):
        return self._record("conv1x1_bias_relu", (x,), (weight, bias, 1, relu), weight, bias, relu)

    def lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        params = (w_feat, b_feat, w_gate, b_gate)
        return self._record("lraspp_gate", (x,), params, *params)

    def upsample_add(self, x, skip):
        return self._record("upsample_add", (x, skip), (), skip)

    def resize_bilinear(self, x, size):
        return self._record("resize_bilinear", (x,), (tuple(size),), tuple(size))


def record_ops(model: torch.nn.Module, shape: tuple[int, ...]) -> list[OpNode]:
    """The op calls ``model(x, ops)`` makes for an input x of ``shape``, in order."""
    x = torch.empty(shape, device="meta")
    recorder = _Recorder(x)
    model(x, recorder)
    return recorder.nodes


def border_widths(nodes: list[OpNode]) -> dict[int, int]:
    """Value -> the zero border it is stored with: 1 where only convs read it and one of them is 3x3, else 0."""
    readers = defaultdict(list)
    for node in nodes:
        for position, value in enumerate(node.inputs):
            readers[value].append((node.op, position))
    borders = {0: 0, **{node.output: 0 for node in nodes}}
    for value, ops in readers.items():
        if all(op in CONV_OPS for op, _ in ops) and any(op == "conv3x3_bias_relu" for op, _ in ops):
            borders[value] = 1
    borders[nodes[-1].output] = 0  # the output is the caller's tensor
    return borders


def buffer_elements(shape: tuple[int, int, int, int], border: int) -> int:
    """Values a buffer holds for an activation [N, C, H, W] stored NHWC inside ``border`` (then, when it has one,
    the slack pixels the CPU kernels may read past a bordered input)."""
    n, c, h, w = shape
    slack = extension.cpu_module().bordered_slack_pixels() if border else 0
    return n * (h + 2 * border) * (w + 2 * border) * c + slack * c


def share_buffers(nodes: list[OpNode], elements: dict[int, int]) -> tuple[dict[int, int], list[int]]:
    """Value -> buffer index, and each buffer's size, for the values in ``elements`` (value -> values it needs).

    A value lives from the node that writes it (the input: from before the first node) to the last node that
    reads it; values whose lives do not overlap may share a buffer (a node's inputs and output never do). Greedy,
    biggest value first, each into the first buffer whose values all live apart from it, else into a new one.
    """
    last_read = {value: i for i, node in enumerate(nodes) for value in node.inputs}
    first = {0: -1, **{node.output: i for i, node in enumerate(nodes)}}
    lives = {value: (first[value], last_read[value]) for value in elements}
    assignment: dict[int, int] = {}
    members: list[list[int]] = []  # per buffer, its values, the first the biggest
    for value in sorted(elements, key=lambda v: (-elements[v], v)):
        start, end = lives[value]
        index = next((i for i, held in enumerate(members)
                      if all(lives[v][1] < start or end < lives[v][0] for v in held)), len(members))
        if index == len(members):
            members.append([])
        members[index].append(value)
        assignment[value] = index
    return assignment, [elements[held[0]] for held in members]


class NativePlan:
    """``model``'s forward pass for inputs of ``shape`` and ``dtype`` on CPU, through ``calls`` (a CpuCalls).

    ``plan(x)`` -> the model's output for x [N, C, H, W] (any layout), a new channels_last tensor. Calls are
    serialised: the buffers are the plan's. Built against the parameters' current values: ``is_current()``
    says whether it still matches them (it does not once one is modified in place).
    """

    def __init__(self, calls, model: torch.nn.Module, shape: tuple[int, int, int, int], dtype: torch.dtype):
        self.shape, self.dtype = tuple(shape), dtype
        self._params = list(model.parameters())
        self._stamp = stamp(*self._params)
        nodes = record_ops(model, self.shape)
        borders = border_widths(nodes)
        shapes = {0: self.shape, **{node.output: node.shape for node in nodes}}
        self._out_shape = nodes[-1].shape
        # the output is the caller's tensor; a bordered input keeps a buffer of its own, as no kernel zeroes its border
        shared = [node.output for node in nodes[:-1]] + ([0] if borders[0] == 0 else [])
        assignment, sizes = share_buffers(nodes, {v: buffer_elements(shapes[v], borders[v]) for v in shared})
        self._buffers = [torch.zeros(size, dtype=dtype) for size in sizes]  # the bound calls hold only pointers
        buffers = {value: self._buffers[index] for value, index in assignment.items()}
        if borders[0]:
            buffers[0] = torch.zeros(buffer_elements(self.shape, borders[0]), dtype=dtype)
            self._buffers.append(buffers[0])
        self._input = self._interior(buffers[0], self.shape, borders[0])
        self._calls = []
        for node in nodes:
            y_ptr = buffers[node.output].data_ptr() if node is not nodes[-1] else None  # the last: passed per call
            self._calls.append(self._bind(calls, node, buffers, shapes, borders, y_ptr))
        self._lock = threading.Lock()

    @staticmethod
    def _interior(buffer: torch.Tensor, shape: tuple[int, int, int, int], border: int) -> torch.Tensor:
        """The [N, C, H, W] view (channels_last strides) of the image stored inside ``buffer``'s border."""
        n, c, h, w = shape
        full = buffer[:n * (h + 2 * border) * (w + 2 * border) * c].view(n, h + 2 * border, w + 2 * border, c)
        return full[:, border:border + h, border:border + w].permute(0, 3, 1, 2)

    def _bind(self, calls, node: OpNode, buffers, shapes, borders, y_ptr):
        x = node.inputs[0]
        n, c, h, w = shapes[x]
        x_ptr, y_pad = buffers[x].data_ptr(), borders[node.output]
        if node.op in CONV_OPS:
            weight, bias, stride, relu = node.params
            return calls.conv(x_ptr, self.dtype, n, h, w, weight, bias, stride, relu, y_ptr, borders[x], y_pad)
        if node.op == "lraspp_gate":
            return calls.lraspp(x_ptr, self.dtype, n, h, w, *node.params, y_ptr)
        if node.op == "upsample_add":
            skip = node.inputs[1]
            return calls.bilinear(x_ptr, self.dtype, n, h, w, c, node.shape[2:], buffers[skip].data_ptr(),
                                         y_ptr, y_pad)
        return calls.bilinear(x_ptr, self.dtype, n, h, w, c, node.params[0], 0, y_ptr, y_pad)

    def kernel_report(self) -> list[dict]:
        """Each conv's kernel and why, in the order the plan runs them: {"shape", "isa", "threads", "kernel",
        "why"} (``choice.KernelChoice.as_dict``)."""
        return [call.choice.as_dict() for call in self._calls if call.choice is not None]

    def is_current(self) -> bool:
        return stamp(*self._params) == self._stamp

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"this plan runs inputs of shape {self.shape}, not {tuple(x.shape)}")
        out = torch.empty(self._out_shape, dtype=self.dtype, memory_format=torch.channels_last)
        with self._lock:
            self._input.copy_(x)
            for call in self._calls[:-1]:
                call()
            self._calls[-1](y=out.data_ptr())
        return out

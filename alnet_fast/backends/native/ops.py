"""NativeOps: the op table on alnet_fast's own kernels (CPU: fp32, bf16; CUDA: fp32, fp16, bf16).

Activations are NHWC (channels_last) in every kernel: inputs in another layout are made channels_last
contiguous first, outputs are allocated here (shapes from ``spec.out_shape``) as channels_last tensors and the
kernels write into them. Weights are packed once (packing.py). Argument checks (dtype, device, rank, shapes)
run in ``OpTable``'s public methods before any of this.

``run(model, x)`` (what Segmenter calls) runs a folded model on CPU as a NativePlan (plan.py): after a first
op-by-op call per input shape, the whole forward pass replays kernel calls bound to preallocated buffers,
with no per-op checks, allocations or padding copies. Same kernels, bit-identical output. Every op runs
natively; none is handed to torch. A bf16 input runs on the bf16 kernels, or on the fp32 kernels (with an fp32
copy of the bf16 weights) where those are measured faster on this CPU (choice.py, ``choose_precision``).
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict

import torch

from ...graph import FoldedALNet, conv_weights
from ..base import OpTable
from ..spec import out_shape
from ..stamps import stamp, trackable
from . import choice, extension
from .calls import DTYPE_NAMES, CpuCalls
from .cuda_calls import CudaCalls
from .packing import NativeWeights
from .plan import NativePlan

CPU_DTYPES = (torch.float32, torch.bfloat16)
CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _empty_nhwc(like: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=torch.channels_last)


class NativeOps(OpTable):
    """The op table on the native kernels; see the module docstring."""

    name = "native"
    devices = ("cpu", "cuda")
    dtypes = CUDA_DTYPES

    plans_kept = 2  # NativePlans cached per table, least recently used dropped first: each holds its buffers

    def __init__(self):
        self.weights = NativeWeights()
        self.cpu = CpuCalls(self.weights)
        self.cuda = CudaCalls(self.weights)
        self._reasons: dict[tuple[str, torch.dtype], str | None] = {}
        self._plans: OrderedDict[tuple, tuple[weakref.ref, NativePlan]] = OrderedDict()
        self._plans_lock = threading.Lock()
        self._fp32_twins: dict[int, tuple[weakref.ref, tuple, FoldedALNet]] = {}  # bf16 model id -> its fp32 copy

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype = torch.float32) -> str | None:
        device = torch.device(device)
        if device.type == "cpu":
            reason = extension.cpu_unavailable_reason()
            supported = CPU_DTYPES
        elif device.type == "cuda":
            reason = extension.cuda_unavailable_reason()
            supported = CUDA_DTYPES
        else:
            return f"backend 'native' runs on ['cpu', 'cuda'], not on {device.type!r}"
        if reason is not None:
            return f"backend 'native' is unavailable on {device.type}: {reason}"
        if dtype not in supported:
            return f"backend 'native' supports {[str(d) for d in supported]} on {device.type}, not {dtype}"
        return None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Packs every conv's weights once (cached against the parameters' stamps)."""
        for weight, bias, stride in conv_weights(model):
            self.weights.conv(weight, bias)
            if weight.device.type == "cpu":
                self.weights.winograd(weight, bias, stride)
        return model

    def run(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """On CPU, a folded model runs as a NativePlan per input shape and dtype: the first call with a shape
        runs op by op (every argument checked) and builds the plan, later ones run the plan (bit-identical).
        Models with inference-tensor weights (no version counter to notice in-place changes) run op by op."""
        if (not isinstance(x, torch.Tensor) or x.device.type != "cpu" or x.dtype not in CPU_DTYPES
                or extension.cpu_module() is None or not isinstance(model, FoldedALNet)):
            return super().run(model, x)
        if (x.dtype == torch.bfloat16 and trackable(*model.parameters())
                and self.bf16_precision(model, x).kernel == choice.FP32_KERNELS):
            return self.run(self._fp32_twin(model), x.float()).to(torch.bfloat16)
        # the ISA is part of the key: the kernel, and with it the packed layout, changes with set_active_isa
        key = (id(model), tuple(x.shape), x.dtype, extension.cpu_module().conv_kernel(DTYPE_NAMES[x.dtype]))
        with self._plans_lock:
            owner, plan = self._plans.get(key, (None, None))
            if plan is not None and owner() is model and plan.is_current():
                self._plans.move_to_end(key)
            else:
                plan = None
        if plan is not None:
            return plan(x)
        y = super().run(model, x)
        if not trackable(*model.parameters()):  # checked here only: replacing one moves its pointer
            return y
        plan = NativePlan(self.cpu, model, tuple(x.shape), x.dtype)
        with self._plans_lock:
            self._plans[key] = (weakref.ref(model), plan)
            while len(self._plans) > self.plans_kept:
                self._plans.popitem(last=False)
        return y

    def bf16_precision(self, model: FoldedALNet, x: torch.Tensor) -> choice.KernelChoice:
        """Whether bf16 ``x`` [N, C, H, W] runs on the bf16 or the fp32 kernels (choice.PROCESS_CHOICES): on first
        sight of its shape, both plans are built and timed on x."""
        runtime = extension.cpu_module().build_info()
        key = choice.PlanKey(runtime["isa_active"], runtime["omp_max_threads"], *x.shape)
        return choice.PROCESS_CHOICES.choose_precision(key, lambda: self._time_precisions(model, x))

    def _time_precisions(self, model: FoldedALNet, x: torch.Tensor) -> dict[str, float]:
        """Seconds per forward pass of ``model`` on bf16 ``x`` as a bf16 plan and as an fp32 plan of its twin."""
        shape = tuple(x.shape)
        bf16, fp32 = NativePlan(self.cpu, model, shape, x.dtype), NativePlan(self.cpu, self._fp32_twin(model), shape,
                                                                             torch.float32)
        x32 = x.float()
        return choice.time_runs({choice.BF16_KERNELS: lambda: bf16(x), choice.FP32_KERNELS: lambda: fp32(x32)})

    def _fp32_twin(self, model: FoldedALNet) -> FoldedALNet:
        """An fp32 copy of a bf16 model (its weights' bf16 values, exactly), remade when a weight changes."""
        version = stamp(*model.parameters())
        with self._plans_lock:
            owner, made_from, twin = self._fp32_twins.get(id(model), (None, None, None))
            if owner is not None and owner() is model and made_from == version:
                return twin
        with torch.inference_mode(False):  # trackable weights, so the twin runs as a NativePlan
            twin = copy.deepcopy(model).float()
        with self._plans_lock:
            self._fp32_twins = {k: v for k, v in self._fp32_twins.items() if v[0]() is not None}
            self._fp32_twins[id(model)] = (weakref.ref(model), version, twin)
        return twin

    def _check_runnable(self, *tensors: torch.Tensor) -> None:
        """Typed errors for what the generic checks allow but these kernels cannot take."""
        for t in tensors:
            if t.layout != torch.strided:
                raise TypeError(f"backend 'native' takes dense (strided) tensors, not {t.layout}")
        x = tensors[0]
        key = (x.device.type, x.dtype)
        if key not in self._reasons:  # fixed for the process: the modules are built and importable, or not
            self._reasons[key] = self.unavailable_reason(x.device, x.dtype)
        reason = self._reasons[key]
        if reason is not None:
            raise TypeError(reason) if "supports" in reason else RuntimeError(reason)

    def _conv(self, op, x, weight, bias, stride, relu, *shape_args):
        self._check_runnable(x, weight, bias)
        x = _nhwc(x)
        y = _empty_nhwc(x, out_shape(op, x, weight, bias, *shape_args))
        if x.is_cuda:
            self.cuda.conv(x, weight, bias, stride, relu, y)
        else:
            n, _, h, w = x.shape
            self.cpu.conv(x.data_ptr(), x.dtype, n, h, w, weight, bias, stride, relu, y.data_ptr())()
        return y

    def _conv3x3_bias_relu(self, x, weight, bias, stride, relu):
        return self._conv("conv3x3_bias_relu", x, weight, bias, stride, relu, stride)

    def _conv1x1_bias_relu(self, x, weight, bias, relu):
        return self._conv("conv1x1_bias_relu", x, weight, bias, 1, relu)

    def _lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        self._check_runnable(x, w_feat, b_feat, w_gate, b_gate)
        x = _nhwc(x)
        y = _empty_nhwc(x, out_shape("lraspp_gate", x, w_feat, b_feat, w_gate, b_gate))
        if x.is_cuda:
            self.cuda.lraspp(x, w_feat, b_feat, w_gate, b_gate, y)
        else:
            n, _, h, w = x.shape
            self.cpu.lraspp(x.data_ptr(), x.dtype, n, h, w, w_feat, b_feat, w_gate, b_gate, y.data_ptr())()
        return y

    def _bilinear(self, x, shape, skip):
        self._check_runnable(x, *([skip] if skip is not None else []))
        x = _nhwc(x)
        y = _empty_nhwc(x, shape)
        skip = _nhwc(skip) if skip is not None else None
        if x.is_cuda:
            self.cuda.bilinear(x, skip, y)
        else:
            n, c, h, w = x.shape
            skip_ptr = skip.data_ptr() if skip is not None else 0
            self.cpu.bilinear(x.data_ptr(), x.dtype, n, h, w, c, shape[2:], skip_ptr, y.data_ptr())()
        return y

    def _upsample_add(self, x, skip):
        return self._bilinear(x, out_shape("upsample_add", x, skip), skip)

    def _resize_bilinear(self, x, size):
        return self._bilinear(x, out_shape("resize_bilinear", x, size), None)

"""The native backend: the C++ CPU kernels and the CUDA kernels of alnet_fast._native / _native_cuda.

Activations are NHWC (channels_last) in every kernel: inputs in another layout are made channels_last
contiguous first, outputs are allocated here as channels_last tensors and the kernels write into them.
Weights are packed once per (weight, bias) pair, at ``prepare`` or on first use, and repacked only if
modified in place: on CPU to [Cout/16][k][k][Cin][16] fp32, or for bf16 to [Cout/16][k][k][Cp/2][16][2]
pairs (Cp = Cin rounded up to 2 for vdpbf16ps, to 32 for AMX tiles); on CUDA to [k][k][Cin][Cout].
Convs with few input channels (the stem; ``conv_uses_im2col``) run on CPU as a 1x1 conv over their k x k
patches, whose bf16 pairs are packed from the weight reordered to [Cout, k k Cin, 1, 1] (``as_patch_conv``).
fp32 3x3 stride-1 convs the CPU module runs as Winograd F(2x2, 3x3) (``conv_uses_winograd``) also get their
transformed weights G g G^T, packed the same way to [16][Cout/16][Cin][16] (``pack_cpu_winograd``).

Argument checks (dtype, device, rank, shapes) run in ``OpTable``'s public methods before any of this.

``run(model, x)`` (what Segmenter calls) runs a folded model on CPU as a NativePlan (native_plan.py): after a
first op-by-op call per input shape, the whole forward pass replays kernel calls bound to preallocated
buffers, with no per-op checks, allocations or padding copies. Same kernels, bit-identical output.

Every op runs natively; none is handed to torch. Measured on the shared 2-core Xeon (AVX-512 BF16, AMX),
torch 2.13, AL-Net 512x512 batch 1, 2 threads, interleaved min of 15-25 runs of each split of the ops
between native and torch: fp32 all-native 65.0 ms vs all-torch 67.0 ms, bf16 all-native 17.9 ms vs
all-torch 22.6 ms, and every mix (native convs + torch resizes, native 3x3 only, ...) fell in between.
Per layer, torch (oneDNN) is at parity or ahead on several shapes (bench/test_native_kernels.py), but
handing those layers to torch did not make the whole model faster. (Those figures predate the Winograd
path: with it, interleaved min of 30, fp32 native 52.0 ms (direct convs 80.4 ms in the same run), ONNX
Runtime 64.3 ms, OpenVINO f32 82.4 ms; per layer Winograd is 1.5-1.85x the direct kernel.)
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .. import native
from ..graph import FoldedALNet, conv_weights
from .base import OpTable
from .native_plan import NativePlan

CPU_DTYPES = (torch.float32, torch.bfloat16)
CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _empty_nhwc(like: torch.Tensor, n: int, c: int, h: int, w: int) -> torch.Tensor:
    return torch.empty((n, c, h, w), dtype=like.dtype, device=like.device, memory_format=torch.channels_last)


def pack_cpu_conv(weight: torch.Tensor, bias: torch.Tensor, bf16_pairs: bool, cin_multiple: int = 2
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [Cout, Cin, k, k], bias [Cout] -> (packed weight, bias [Cout rounded up to 16] fp32).

    Packed: [Cout/16, k, k, Cin, 16] fp32, or [Cout/16, k, k, Cp/2, 16, 2] bf16 with Cp = Cin rounded up
    to ``cin_multiple`` (2 for vdpbf16ps, 32 for AMX tiles)."""
    cout, cin, k, _ = weight.shape
    blocks = -(-cout // 16)
    w = F.pad(weight.detach(), (0, 0, 0, 0, 0, 0, 0, blocks * 16 - cout))
    b = F.pad(bias.detach().float(), (0, blocks * 16 - cout)).contiguous()
    if not bf16_pairs:
        return w.float().reshape(blocks, 16, cin, k, k).permute(0, 3, 4, 2, 1).contiguous(), b
    cin_padded = -(-cin // cin_multiple) * cin_multiple
    w = F.pad(w, (0, 0, 0, 0, 0, cin_padded - cin)).to(torch.bfloat16)
    return w.reshape(blocks, 16, cin_padded // 2, 2, k, k).permute(0, 4, 5, 2, 1, 3).contiguous(), b


def as_patch_conv(weight: torch.Tensor) -> torch.Tensor:
    """weight [Cout, Cin, k, k] -> [Cout, k * k * Cin, 1, 1] ordered (ky, kx, c): the 1x1 conv over im2col patches."""
    cout, cin, k, _ = weight.shape
    return weight.detach().permute(0, 2, 3, 1).reshape(cout, k * k * cin, 1, 1)


# G of Winograd F(2x2, 3x3): U = G g G^T turns a 3x3 kernel g into the 4x4 one multiplied elementwise with
# the transformed 4x4 input tiles (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks").
_WINOGRAD_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def pack_cpu_winograd(weight: torch.Tensor) -> torch.Tensor:
    """weight [Cout, Cin, 3, 3] (Cout a multiple of 16) -> U = G g G^T as [16, Cout/16, Cin, 16] fp32,
    the 4x4 position e = 4 i + j outermost. Transformed in float64, then rounded once to fp32."""
    cout, cin = weight.shape[:2]
    g = torch.tensor(_WINOGRAD_G, dtype=torch.float64)
    u = g @ weight.detach().double() @ g.T  # [Cout, Cin, 4, 4]
    return u.float().reshape(cout // 16, 16, cin, 16).permute(3, 0, 2, 1).contiguous()


def pack_cuda_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight [Cout, Cin, k, k] -> [k, k, Cin, Cout] (coalesced over Cout), bias contiguous."""
    return weight.detach().permute(2, 3, 1, 0).contiguous(), bias.detach().contiguous()


@dataclass(frozen=True)
class KernelCall:
    """One CPU kernel call with every argument bound (pointers included); ``keep`` holds the tensors the
    pointers point into (packed weights) alive for as long as the call can run."""

    run: Callable[..., None]
    keep: tuple = ()

    def __call__(self, **late_arguments) -> None:
        self.run(**late_arguments)


class _PackCache:
    """Packed weights per (weight, bias, layout), rebuilt when either tensor is modified in place."""

    def __init__(self):
        self._entries: dict[tuple[int, str], tuple] = {}

    def get(self, weight: torch.Tensor, bias: torch.Tensor, layout: str, pack):
        if weight.is_inference() or bias.is_inference():  # no version counter: cannot tell if modified
            return pack()
        key = (id(weight), layout)
        stamp = (weight._version, bias._version, weight.data_ptr(), bias.data_ptr())
        hit = self._entries.get(key)
        if hit is not None and hit[0]() is weight and hit[1]() is bias and hit[2] == stamp:
            return hit[3]
        packed = pack()
        self._entries[key] = (weakref.ref(weight, lambda _: self._entries.pop(key, None)), weakref.ref(bias),
                              stamp, packed)
        return packed


class NativeOps(OpTable):
    """The op table on alnet_fast's own kernels (CPU: fp32, bf16; CUDA: fp32, fp16, bf16)."""

    name = "native"
    devices = ("cpu", "cuda")
    dtypes = CUDA_DTYPES

    plans_kept = 2  # NativePlans cached per table, least recently used dropped first: each holds its buffers

    def __init__(self):
        self._packs = _PackCache()
        self._reasons: dict[tuple[str, torch.dtype], str | None] = {}
        self._plans: OrderedDict[tuple, tuple[weakref.ref, NativePlan]] = OrderedDict()
        self._plans_lock = threading.Lock()

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype = torch.float32) -> str | None:
        device = torch.device(device)
        if device.type == "cpu":
            reason = native.cpu_unavailable_reason()
            supported = CPU_DTYPES
        elif device.type == "cuda":
            reason = native.cuda_unavailable_reason()
            supported = CUDA_DTYPES
        else:
            return f"backend 'native' runs on ['cpu', 'cuda'], not on {device.type!r}"
        if reason is not None:
            return f"backend 'native' is unavailable on {device.type}: {reason}"
        if dtype not in supported:
            return f"backend 'native' supports {[str(d) for d in supported]} on {device.type}, not {dtype}"
        return None

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Packs every conv's weights once (cached against the parameters; see the module docstring)."""
        for weight, bias, stride in conv_weights(model):
            self._conv_pack(weight, bias)
            if weight.device.type == "cpu":
                self._winograd_pack(weight, bias, stride)
        return model

    def run(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """On CPU, a folded model runs as a NativePlan per input shape and dtype: the first call with a shape
        runs op by op (every argument checked) and builds the plan, later ones run the plan (bit-identical).
        Models with inference-tensor weights (no version counter to notice in-place changes) run op by op."""
        if (not isinstance(x, torch.Tensor) or x.device.type != "cpu" or x.dtype not in CPU_DTYPES
                or native.cpu_module() is None or not isinstance(model, FoldedALNet)):
            return super().run(model, x)
        # the ISA is part of the key: the kernel, and with it the packed layout, changes with set_active_isa
        key = (id(model), tuple(x.shape), x.dtype, native.cpu_module().conv_kernel(_DTYPE_NAMES[x.dtype]))
        with self._plans_lock:
            owner, plan = self._plans.get(key, (None, None))
            if plan is not None and owner() is model and plan.is_current():
                self._plans.move_to_end(key)
            else:
                plan = None
        if plan is not None:
            return plan(x)
        y = super().run(model, x)
        if any(p.is_inference() for p in model.parameters()):  # checked here only: replacing one moves its pointer
            return y
        plan = NativePlan(self, model, tuple(x.shape), x.dtype)
        with self._plans_lock:
            self._plans[key] = (weakref.ref(model), plan)
            while len(self._plans) > self.plans_kept:
                self._plans.popitem(last=False)
        return y

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

    def _conv_pack(self, weight: torch.Tensor, bias: torch.Tensor):
        if weight.device.type == "cuda":
            return self._packs.get(weight, bias, "cuda", lambda: pack_cuda_conv(weight, bias))
        module = native.cpu_module()
        if weight.dtype == torch.bfloat16 and module.uses_bf16_dot():
            multiple = module.bf16_channel_multiple()
            if module.conv_uses_im2col(weight.shape[1], weight.shape[-1]):  # a 1x1 conv over (ky, kx, c) patches
                return self._packs.get(weight, bias, f"cpu-bf16-pairs-{multiple}-im2col",
                                       lambda: pack_cpu_conv(as_patch_conv(weight), bias, True, multiple))
            return self._packs.get(weight, bias, f"cpu-bf16-pairs-{multiple}",
                                   lambda: pack_cpu_conv(weight, bias, True, multiple))
        return self._packs.get(weight, bias, "cpu-fp32", lambda: pack_cpu_conv(weight, bias, False))

    def _winograd_pack(self, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor | None:
        """The Winograd weights if the CPU module runs this fp32 conv as Winograd, else None."""
        cout, cin, k = weight.shape[0], weight.shape[1], weight.shape[-1]
        if weight.dtype != torch.float32 or not native.cpu_module().conv_uses_winograd(cin, cout, k, stride):
            return None
        return self._packs.get(weight, bias, "cpu-fp32-winograd", lambda: pack_cpu_winograd(weight))

    def _conv(self, x, weight, bias, stride, relu):
        self._check_runnable(x, weight, bias)
        x = _nhwc(x)
        n, cin, h, w = x.shape
        cout, k = weight.shape[0], weight.shape[-1]
        y = _empty_nhwc(x, n, cout, (h - 1) // stride + 1, (w - 1) // stride + 1)
        if x.is_cuda:
            packed, packed_bias = self._conv_pack(weight, bias)
            native.cuda_module().conv2d(x.data_ptr(), _DTYPE_NAMES[x.dtype], n, h, w, cin, packed.data_ptr(),
                                        packed_bias.data_ptr(), 0, y.data_ptr(), cout, k, stride, relu,
                                        torch.cuda.current_stream(x.device).cuda_stream)
        else:
            self.cpu_conv_call(x.data_ptr(), x.dtype, n, h, w, weight, bias, stride, relu, y.data_ptr())()
        return y

    # CPU kernel calls with their arguments bound, for the per-op methods and for NativePlan, which binds them
    # to its bordered buffers (x_pad, y_pad: see csrc/cpu/cpu_kernels.h).

    def cpu_conv_call(self, x_ptr: int, dtype: torch.dtype, n: int, h: int, w: int, weight: torch.Tensor,
                      bias: torch.Tensor, stride: int, relu: bool, y_ptr: int | None, x_pad: int = 0,
                      y_pad: int = 0) -> KernelCall:
        """conv2d over x [n, h, w, Cin] at x_ptr into y at y_ptr (None: passed later as ``y=``)."""
        packed, packed_bias = self._conv_pack(weight, bias)
        winograd = self._winograd_pack(weight, bias, stride)
        kwargs = {} if y_ptr is None else {"y": y_ptr}
        run = functools.partial(
            native.cpu_module().conv2d, x=x_ptr, dtype=_DTYPE_NAMES[dtype], n=n, h=h, w=w, cin=weight.shape[1],
            weight=packed.data_ptr(), weight_bf16_pairs=packed.dtype == torch.bfloat16, bias=packed_bias.data_ptr(),
            scale=0, cout=weight.shape[0], ksize=weight.shape[-1], stride=stride, relu=relu,
            winograd_weight=winograd.data_ptr() if winograd is not None else 0, x_pad=x_pad, y_pad=y_pad, **kwargs)
        return KernelCall(run, (packed, packed_bias, winograd))

    def cpu_lraspp_call(self, x_ptr: int, dtype: torch.dtype, n: int, h: int, w: int, w_feat: torch.Tensor,
                        b_feat: torch.Tensor, w_gate: torch.Tensor, b_gate: torch.Tensor, y_ptr: int | None
                        ) -> KernelCall:
        cout, cin = w_feat.shape[:2]
        packed, packed_bias = self._conv_pack(w_feat, b_feat)
        gate_w, gate_b = self._packs.get(w_gate, b_gate, "cpu-gate-fp32",
                                         lambda: (w_gate.detach().reshape(cout, cin).float().contiguous(),
                                                  b_gate.detach().float().contiguous()))
        kwargs = {} if y_ptr is None else {"y": y_ptr}
        run = functools.partial(
            native.cpu_module().lraspp_gate, x=x_ptr, dtype=_DTYPE_NAMES[dtype], n=n, h=h, w=w, cin=cin,
            w_feat=packed.data_ptr(), w_feat_bf16_pairs=packed.dtype == torch.bfloat16, b_feat=packed_bias.data_ptr(),
            w_gate=gate_w.data_ptr(), b_gate=gate_b.data_ptr(), cout=cout, **kwargs)
        return KernelCall(run, (packed, packed_bias, gate_w, gate_b))

    @staticmethod
    def cpu_bilinear_call(x_ptr: int, dtype: torch.dtype, n: int, h: int, w: int, c: int, size: tuple[int, int],
                          skip_ptr: int, y_ptr: int | None, y_pad: int = 0) -> KernelCall:
        kwargs = {} if y_ptr is None else {"y": y_ptr}
        return KernelCall(functools.partial(native.cpu_module().bilinear, x=x_ptr, dtype=_DTYPE_NAMES[dtype], n=n,
                                            h=h, w=w, c=c, out_h=size[0], out_w=size[1], skip=skip_ptr,
                                            y_pad=y_pad, **kwargs))

    def _conv3x3_bias_relu(self, x, weight, bias, stride, relu):
        return self._conv(x, weight, bias, stride, relu)

    def _conv1x1_bias_relu(self, x, weight, bias, relu):
        return self._conv(x, weight, bias, 1, relu)

    def _lraspp_gate(self, x, w_feat, b_feat, w_gate, b_gate):
        self._check_runnable(x, w_feat, b_feat, w_gate, b_gate)
        x = _nhwc(x)
        n, cin, h, w = x.shape
        cout = w_feat.shape[0]
        y = _empty_nhwc(x, n, cout, h, w)
        if x.is_cuda:
            packed, packed_bias = self._conv_pack(w_feat, b_feat)
            gate_w, gate_b = w_gate.detach().reshape(cout, cin).contiguous(), b_gate.detach().contiguous()
            workspace = torch.empty(n * (cin + cout), dtype=torch.float32, device=x.device)
            native.cuda_module().lraspp_gate(x.data_ptr(), _DTYPE_NAMES[x.dtype], n, h, w, cin, packed.data_ptr(),
                                             packed_bias.data_ptr(), gate_w.data_ptr(), gate_b.data_ptr(),
                                             workspace.data_ptr(), y.data_ptr(), cout,
                                             torch.cuda.current_stream(x.device).cuda_stream)
        else:
            self.cpu_lraspp_call(x.data_ptr(), x.dtype, n, h, w, w_feat, b_feat, w_gate, b_gate, y.data_ptr())()
        return y

    def _bilinear(self, x, size, skip):
        self._check_runnable(x, *([skip] if skip is not None else []))
        x = _nhwc(x)
        n, c, h, w = x.shape
        y = _empty_nhwc(x, n, c, *size)
        skip = _nhwc(skip) if skip is not None else None
        skip_ptr = skip.data_ptr() if skip is not None else 0
        if x.is_cuda:
            native.cuda_module().bilinear(x.data_ptr(), _DTYPE_NAMES[x.dtype], n, h, w, c, *size, skip_ptr,
                                          y.data_ptr(), torch.cuda.current_stream(x.device).cuda_stream)
        else:
            self.cpu_bilinear_call(x.data_ptr(), x.dtype, n, h, w, c, size, skip_ptr, y.data_ptr())()
        return y

    def _upsample_add(self, x, skip):
        return self._bilinear(x, tuple(skip.shape[-2:]), skip)

    def _resize_bilinear(self, x, size):
        return self._bilinear(x, size, None)

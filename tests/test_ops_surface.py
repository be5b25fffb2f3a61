"""The op surface: every backend implements the same op table, alnet_fast.ops dispatches to it, torch
custom ops keep it traceable, and bad arguments or unusable backends fail with typed errors first."""

import functools
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import alnet_fast.ops
from alnet_fast import BackendUnavailable
from alnet_fast.backends import OP_NAMES, backend_names, get_backend, select_backend
from alnet_fast.backends.triton import ops as triton_ops
from alnet_fast.backends.torch_ops import TORCH_OPS

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(autouse=True)
def _no_tf32_in_torch():
    """On CUDA, torch's fp32 convs and matmuls default to TF32 (cuDNN: 10-bit mantissa operands): the torch
    references here are made exact fp32 for the test's duration, so that they are fp32 references."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def tolerance(backend: str) -> float:
    """max|diff| / max|ref| allowed for a backend's fp32 ops against the fp32 torch reference.

    fp32 accumulation, at most 9 * 48 terms: order only, 1e-5 (see test_triton_kernels.py for the bound).
    Triton on a GPU runs fp32 tl.dot in TF32 by default (operands rounded to 11 significant bits, so each
    product is off by at most 2^-10 relative): the error is at most 2^-10 sum|x||w|, which is below 2.5 max|ref|
    for these unit-normal shapes, hence 2.5e-3; 5e-3 covers the chained ops (a gate over a TF32 conv output).
    """
    table = select_backend(backend, DEVICE)[0].name
    return 5e-3 if table == "triton" and DEVICE == "cuda" else 1e-5


def r(*shape):
    return torch.randn(*shape, device=DEVICE)


# One small call per op of the table: (positional args, kwargs). Odd sizes and non-tile channel counts.
OP_CALLS = {
    "conv3x3_bias_relu": lambda: ((r(3, 3, 7, 9), r(24, 3, 3, 3), r(24)), dict(stride=2, relu=True)),
    "conv1x1_bias_relu": lambda: ((r(1, 40, 5, 7), r(20, 40, 1, 1), r(20)), dict(relu=False)),
    "lraspp_gate": lambda: ((r(3, 48, 4, 6), r(40, 48, 1, 1), r(40), r(40, 48, 1, 1), r(40)), {}),
    "upsample_add": lambda: ((r(1, 24, 4, 5), r(1, 24, 7, 9)), {}),
    "resize_bilinear": lambda: ((r(1, 3, 4, 5),), dict(size=(13, 17))),
}


def available_backends() -> list[str]:
    names = []
    for name in backend_names():
        try:
            get_backend(name, DEVICE)
        except BackendUnavailable:
            continue
        names.append(name)
    return names


def test_the_op_calls_cover_the_table():
    assert set(OP_CALLS) == set(OP_NAMES)


def test_torch_and_triton_are_available_here():
    assert {"torch", "triton"} <= set(available_backends())


@pytest.mark.parametrize("op", OP_NAMES)
def test_every_available_backend_implements_every_op(op):
    args, kwargs = OP_CALLS[op]()
    ref = getattr(TORCH_OPS, op)(*args, **kwargs)
    for name in available_backends():
        out = getattr(get_backend(name, DEVICE), op)(*args, **kwargs)
        assert out.shape == ref.shape and out.dtype == ref.dtype, name
        assert (out - ref).abs().max().item() <= tolerance(name) * ref.abs().max().item(), name


@pytest.mark.parametrize("backend", ["torch", "triton", "auto"])
def test_ops_functions_match_the_reference(backend):
    x = r(2, 16, 9, 7)  # NCHW-contiguous: any memory format is accepted
    w, b = r(32, 16, 3, 3), r(32)
    y = alnet_fast.ops.conv3x3_bias_relu(x, w, b, stride=2, backend=backend)
    ref = torch.relu(F.conv2d(x, w, b, stride=2, padding=1))
    assert y.is_contiguous(memory_format=torch.channels_last)
    tol = tolerance(backend)
    assert (y - ref).abs().max().item() <= tol * ref.abs().max().item()

    wf, bf, wg, bg = r(24, 32, 1, 1), r(24), r(24, 32, 1, 1), r(24)
    z = alnet_fast.ops.lraspp_gate(y, wf, bf, wg, bg, backend=backend)
    ref_z = torch.relu(F.conv2d(ref, wf, bf)) * F.hardsigmoid(F.conv2d(ref.mean((2, 3), keepdim=True), wg, bg))
    assert (z - ref_z).abs().max().item() <= tol * ref_z.abs().max().item()

    up = alnet_fast.ops.upsample_add(z[..., :3, :2], z, backend=backend)
    assert torch.allclose(up, TORCH_OPS.upsample_add(z[..., :3, :2], z), rtol=1e-5, atol=1e-6)
    small = alnet_fast.ops.conv1x1_bias_relu(z, r(1, 24, 1, 1), r(1), relu=False, backend=backend)
    assert alnet_fast.ops.resize_bilinear(small, (9, 7), backend=backend).shape == (2, 1, 9, 7)


class TinyHead(torch.nn.Module):
    """A stride-2 conv then a Lite R-ASPP gate, both through alnet_fast.ops on the Triton backend."""

    def __init__(self):
        super().__init__()
        self.w, self.b = torch.nn.Parameter(r(16, 3, 3, 3)), torch.nn.Parameter(r(16))
        self.wf, self.bf = torch.nn.Parameter(r(8, 16, 1, 1)), torch.nn.Parameter(r(8))
        self.wg, self.bg = torch.nn.Parameter(r(8, 16, 1, 1)), torch.nn.Parameter(r(8))

    def forward(self, x):
        y = alnet_fast.ops.conv3x3_bias_relu(x, self.w, self.b, stride=2, backend="triton")
        return alnet_fast.ops.lraspp_gate(y, self.wf, self.bf, self.wg, self.bg, backend="triton")


@torch.no_grad()
def test_torch_export_traces_the_custom_ops():
    head, x = TinyHead().eval(), r(1, 3, 13, 17)
    exported = torch.export.export(head, (x,))
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert {"alnet_fast.conv3x3_bias_relu.default", "alnet_fast.lraspp_gate.default"} <= targets
    assert torch.equal(exported.module()(x), head(x))


@torch.no_grad()
def test_torch_compile_fullgraph_traces_the_custom_ops():
    head, x = TinyHead().eval(), r(1, 3, 13, 17)
    compiled = torch.compile(head, backend="eager", fullgraph=True)  # fullgraph: a graph break raises
    assert torch.equal(compiled(x), head(x))


def test_unusable_backends_raise_backend_unavailable_with_the_reason():
    x, w, b = r(1, 3, 8, 8), r(4, 3, 3, 3), r(4)
    with pytest.raises(BackendUnavailable, match="unknown backend 'nope'"):
        alnet_fast.ops.conv3x3_bias_relu(x, w, b, backend="nope")
    if DEVICE == "cpu":
        with pytest.raises(BackendUnavailable, match="bfloat16"):
            alnet_fast.ops.conv3x3_bias_relu(x.bfloat16(), w.bfloat16(), b.bfloat16(), backend="triton")
        with pytest.raises(BackendUnavailable, match="TRITON_INTERPRET=1|no CUDA"):
            get_backend("triton", "cuda")  # no CUDA torch or device here, or kernels loaded for the interpreter


def test_triton_on_cpu_without_the_interpreter_says_how_to_enable_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    # cwd away from the checkout, so that Python imports the installed package (with its built extension)
    code = ("from alnet_fast.backends import get_backend\n"
            "try:\n    get_backend('triton', 'cpu')\nexcept Exception as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.stdout.strip() == ("BackendUnavailable triton on CPU needs TRITON_INTERPRET=1 set before "
                                  "triton is imported"), out.stderr[-2000:]


class TritonThroughOps:
    """alnet_fast.ops with backend="triton", called like an op table."""

    def __getattr__(self, op):
        return functools.partial(getattr(alnet_fast.ops, op), backend="triton")


def _z(*shape, **kw):
    return torch.zeros(*shape, **kw)


BAD_CALLS = [
    (lambda f: f.conv3x3_bias_relu(_z(3, 8, 8), _z(4, 3, 3, 3), _z(4)), ValueError, "rank 4"),
    (lambda f: f.conv3x3_bias_relu(_z(1, 3, 8, 8, dtype=torch.int32), _z(4, 3, 3, 3), _z(4)), TypeError, "int32"),
    (lambda f: f.conv3x3_bias_relu(_z(1, 3, 8, 8), _z(4, 3, 3, 3, dtype=torch.float16), _z(4)),
     TypeError, "dtype mismatch"),
    (lambda f: f.conv3x3_bias_relu(_z(1, 3, 8, 8), _z(4, 3, 3, 3, device="meta"), _z(4)),
     ValueError, "different devices"),
    (lambda f: f.conv3x3_bias_relu(_z(1, 5, 8, 8), _z(4, 3, 3, 3), _z(4)), ValueError, "input channels"),
    (lambda f: f.conv3x3_bias_relu(_z(1, 3, 8, 8), _z(4, 3, 1, 1), _z(4)), ValueError, "3x3"),
    (lambda f: f.conv3x3_bias_relu(_z(1, 3, 8, 8), _z(4, 3, 3, 3), _z(4), stride=3), ValueError, "stride"),
    (lambda f: f.lraspp_gate(_z(1, 8, 4, 4), _z(4, 8, 1, 1), _z(4), _z(4, 6, 1, 1), _z(4)),
     ValueError, "input channels"),
    (lambda f: f.lraspp_gate(_z(1, 8, 4, 4), _z(4, 8, 3, 3), _z(4), _z(4, 8, 3, 3), _z(4)), ValueError, "1x1"),
    (lambda f: f.upsample_add(_z(1, 3, 4, 4), _z(2, 3, 8, 8)), ValueError, "batch or channels"),
]


@pytest.mark.parametrize("surface", ["ops", "triton_table"])
@pytest.mark.parametrize("call,error,match", BAD_CALLS)
def test_bad_arguments_raise_typed_errors_before_any_kernel(surface, call, error, match, monkeypatch):
    def launched(*args, **kwargs):
        raise AssertionError("a kernel was launched before the arguments were checked")

    for kernel_entry in ("conv_bias_act", "lraspp_gate", "resize_bilinear", "pack_conv_weight"):
        monkeypatch.setattr(triton_ops, kernel_entry, launched)
    target = TritonThroughOps() if surface == "ops" else triton_ops.TritonOps()
    with pytest.raises(error, match=match):
        call(target)

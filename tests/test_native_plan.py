"""NativePlan: the native backend's whole-model CPU runner, against the op-by-op run (bit-identical: the same
kernels on the same values) and against the multi-branch training model."""

import threading

import pytest
import torch

import alnet_fast
from alnet_fast import ALNetConfig, reparameterize
from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps
from alnet_fast.backends.native.plan import NativePlan, border_widths, buffer_elements, record_ops, share_buffers
from alnet_fast.testing import random_alnet

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")


def folded(config: ALNetConfig | None = None, seed: int = 0, dtype: torch.dtype = torch.float32):
    return reparameterize(random_alnet(config, seed)).to(dtype)


def within_parity_bound(out: torch.Tensor, ref: torch.Tensor) -> bool:
    """The foundation's parity bound against the multi-branch model: fp32, only folding and accumulation order
    differ."""
    return (out - ref).abs().max().item() <= 1e-5 * ref.abs().max().item() + 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("config, shape", [(ALNetConfig(), (1, 3, 64, 64)),
                                           (ALNetConfig(in_channels=1, num_classes=3), (2, 1, 96, 160))], ids=str)
def test_plan_is_bit_identical_to_the_op_by_op_run(isa, dtype, config, shape):
    model = folded(config, seed=shape[-1], dtype=dtype)
    ops = NativeOps()
    plan = NativePlan(ops.cpu, model, shape, dtype)
    for _ in range(2):  # a second input: borders the first run left must still be zero
        x = torch.randn(shape).to(dtype)
        out = plan(x)
        assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(out, model(x, ops))


def test_plan_matches_the_multibranch_model():
    model = random_alnet(ALNetConfig(in_channels=1), seed=5)
    x = torch.randn(2, 1, 96, 128)
    with torch.no_grad():
        ref = model(x)
        out = NativePlan(NativeOps().cpu, reparameterize(model), tuple(x.shape), torch.float32)(x)
    assert within_parity_bound(out, ref)


def test_borders_go_to_activations_only_convs_read():
    nodes = record_ops(folded(), (1, 3, 64, 64))
    assert len(nodes) == 22 + 1 + 6 + 3 + 1  # encoder convs, Lite R-ASPP, decoder convs, upsample_adds, resize
    borders = border_widths(nodes)
    readers = {value: [n.op for n in nodes if value in n.inputs] for value in borders}
    for value, width in borders.items():
        ops = readers[value]
        if width:
            assert "conv3x3_bias_relu" in ops and all(op.startswith("conv") for op in ops)
        else:
            assert not ops or "conv3x3_bias_relu" not in ops or any(not op.startswith("conv") for op in ops)
    assert borders[0] == 1 and borders[nodes[-1].output] == 0


def test_activations_share_buffers_only_when_they_live_apart():
    nodes = record_ops(folded(), (1, 3, 64, 64))
    borders = border_widths(nodes)
    shapes = {0: (1, 3, 64, 64), **{node.output: node.shape for node in nodes}}
    values = [node.output for node in nodes[:-1]]
    elements = {v: buffer_elements(shapes[v], borders[v]) for v in values}
    assignment, sizes = share_buffers(nodes, elements)
    written = {node.output: i for i, node in enumerate(nodes)}
    last_read = {v: max(i for i, node in enumerate(nodes) if v in node.inputs) for v in values}
    for a in values:
        assert sizes[assignment[a]] >= elements[a]
        for b in values:
            if a < b and assignment[a] == assignment[b]:  # one is read for the last time before the other is written
                assert last_read[a] < written[b] or last_read[b] < written[a], (a, b)
    layouts = {}
    for v in values:
        layouts.setdefault(assignment[v], set()).add((shapes[v], borders[v]))
    assert len(sizes) < len(values) and any(len(kinds) > 1 for kinds in layouts.values())


def test_segmenter_runs_a_plan_after_its_first_call():
    model = random_alnet(ALNetConfig(in_channels=1), seed=6)
    seg = alnet_fast.load(model, backend="native", device="cpu", dtype=torch.bfloat16)
    x = torch.rand(2, 1, 64, 96)
    first = seg.logits(x)  # op by op, every argument checked; builds the plan
    assert len(seg.ops._plans) == 1
    assert torch.equal(seg.logits(x), first)
    assert torch.equal(seg.logits(x[:1]), first[:1]) and len(seg.ops._plans) == 2


@pytest.mark.parametrize("update", ["in place", "data"])
def test_plan_follows_weight_updates(update):
    model = folded(seed=7)
    ops = NativeOps()
    x = torch.randn(1, 3, 64, 64)
    before = ops.run(model, x)
    assert torch.equal(ops.run(model, x), before)  # the plan
    weight = model.decoder["fuse"].weight
    with torch.no_grad():
        if update == "in place":
            weight.mul_(-1)
        else:
            weight.data = -weight.data
    after = ops.run(model, x)
    assert not torch.equal(after, before) and torch.equal(after, model(x, NativeOps()))


def test_inference_tensor_weights_run_op_by_op():
    """Inference tensors have no version counter, so a plan could not notice them change: none is built."""
    with torch.inference_mode():
        model = folded(seed=9)
        ops = NativeOps()
        x = torch.randn(1, 3, 64, 64)
        first = ops.run(model, x)
        assert torch.equal(ops.run(model, x), first) and not ops._plans
        model.decoder["fuse"].weight.mul_(-1)
        assert not torch.equal(ops.run(model, x), first) and not ops._plans


def test_plan_calls_from_threads_do_not_mix():
    model = folded(seed=8)
    ops = NativeOps()
    inputs = [torch.randn(1, 3, 64, 64) for _ in range(4)]
    expected = [model(x, ops) for x in inputs]
    ops.run(model, inputs[0])  # builds the plan
    results = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = ops.run(model, inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(results[i], expected[i]) for i in range(4))


def test_plan_rejects_another_shape():
    plan = NativePlan(NativeOps().cpu, folded(), (1, 3, 64, 64), torch.float32)
    with pytest.raises(ValueError, match="shape"):
        plan(torch.randn(1, 3, 64, 96))


def test_invalid_input_still_gets_the_op_tables_typed_error():
    ops, model = NativeOps(), folded()
    with pytest.raises(ValueError, match="input channels"):
        ops.run(model, torch.randn(1, 2, 64, 64))
    with pytest.raises(TypeError, match="dtype"):
        ops.run(model, torch.randn(1, 3, 64, 64).bfloat16())

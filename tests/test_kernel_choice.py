"""Measured kernel choice for CPU convs (alnet_fast/backends/native/choice.py): Winograd or direct per conv shape,
cached on disk per CPU, ISA, threads and shape, reported by build_info() and NativePlan.kernel_report().

No assertion depends on a timing: the timer (``choice.time_runs``) is replaced by one that counts its calls and
returns fixed times (direct faster unless a test says otherwise, so measured choices differ from the rule's).
"""

import dataclasses
import json
import warnings

import pytest
import torch

import alnet_fast
from alnet_fast import ALNetConfig, reparameterize
from alnet_fast.backends import native
from alnet_fast.backends.native import NativeOps, choice
from alnet_fast.backends.native.choice import ConvKey, KernelChoices, cpu_identity_from, why_not_winograd
from alnet_fast.backends.native.plan import NativePlan
from alnet_fast.testing import random_alnet

from test_native_plan import folded, within_parity_bound

pytestmark = pytest.mark.skipif(native.cpu_module() is None, reason=f"{native.cpu_unavailable_reason()}")

ISA_LEVELS = ("scalar", "avx2", "avx512", "avx512_bf16", "amx_bf16")
SHAPE = (1, 3, 64, 64)  # the default model at 64x64: Winograd-eligible convs at 16x16, 8x8 and 4x4


def _detected_isa() -> str:
    module = native.cpu_module()
    return module.build_info()["isa_detected"] if module is not None else "scalar"


requires_avx512 = pytest.mark.skipif(ISA_LEVELS.index(_detected_isa()) < 2, reason="Winograd needs AVX-512")


class FakeTimer:
    """Stands in for choice.time_runs: records the kernels each call was asked to time and returns ``seconds``
    (kernel prefix -> seconds) without running them."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, runs):
        self.calls.append(tuple(runs))
        return {name: self.seconds[name.split("_")[0]] for name in runs}


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """Measure mode with an empty cache under tmp_path, a fresh process's choices, and a FakeTimer (direct
    faster); restores the detected ISA and the thread count afterwards."""
    module = native.cpu_module()
    threads = module.build_info()["omp_max_threads"]
    monkeypatch.setenv(choice.MODE_ENV, "measure")
    monkeypatch.setenv("ALNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(choice, "PROCESS_CHOICES", KernelChoices())
    timer = FakeTimer({"winograd": 2e-3, "direct": 1e-3})
    monkeypatch.setattr(choice, "time_runs", timer)
    yield timer
    module.set_active_isa(_detected_isa())
    module.set_num_threads(threads)


def a_new_process(monkeypatch) -> None:
    """What a new process starts with: no choices made yet (the cache file stays)."""
    monkeypatch.setattr(choice, "PROCESS_CHOICES", KernelChoices())


def choices_of(plan: NativePlan) -> list[choice.KernelChoice]:
    """The kernel choice of each conv the plan runs, in order (what ``kernel_report()`` lists)."""
    return [call.choice for call in plan._calls if call.choice is not None]


def rule_winograd(key: ConvKey) -> bool:
    """Whether the fixed rule runs a conv of ``key`` as Winograd (at the active ISA)."""
    return key.dtype == "float32" and native.cpu_module().conv_uses_winograd(key.cin, key.cout, key.ksize, key.stride)


def eligible_shapes(plan: NativePlan) -> set[str]:
    return {c.key.shape for c in choices_of(plan) if rule_winograd(c.key)}


@requires_avx512
def test_choice_is_measured_once_cached_and_reused(measured, monkeypatch):
    model = folded()
    plan = NativePlan(NativeOps().cpu, model, SHAPE, torch.float32)
    eligible = eligible_shapes(plan)
    assert len(eligible) >= 3 and len(measured.calls) == len(eligible)  # one timing per eligible shape
    assert all(set(kernels) == {"winograd_avx512", "direct_avx512"} for kernels in measured.calls)
    report = plan.kernel_report()
    assert all(row["kernel"] == "direct_avx512" and row["why"].startswith("measured direct_avx512 1.000 ms vs "
                                                                          "winograd_avx512 2.000 ms")
               for row in report if row["shape"] in eligible)
    cache = json.loads(choice.kernel_cache_file().read_text())
    entries = cache["cpus"][choice.cpu_identity()]
    assert cache["format"] == 1 and len(entries) == len(eligible)
    assert all(e["kernel"] == "direct_avx512" for e in entries.values())

    NativePlan(NativeOps().cpu, model, SHAPE, torch.float32)  # the same process: decided already
    a_new_process(monkeypatch)
    again = NativePlan(NativeOps().cpu, model, SHAPE, torch.float32)  # a new process: read from the cache
    assert len(measured.calls) == len(eligible)
    assert [r["kernel"] for r in again.kernel_report()] == [r["kernel"] for r in report]
    assert all(f"read from {choice.kernel_cache_file()}" in r["why"] for r in again.kernel_report()
               if r["shape"] in eligible)


@requires_avx512
def test_cache_key_changes_with_threads_isa_and_shape(measured):
    ops = NativeOps()
    x, weight, bias = torch.randn(1, 32, 12, 12), torch.randn(32, 32, 3, 3), torch.randn(32)

    def timings_for(x):
        before = len(measured.calls)
        ops.conv3x3_bias_relu(x, weight, bias)
        return len(measured.calls) - before

    assert timings_for(x) == 1 and timings_for(x) == 0
    assert timings_for(torch.randn(2, 32, 12, 12)) == 1  # batch
    assert timings_for(torch.randn(1, 32, 12, 16)) == 1  # width
    module = native.cpu_module()
    module.set_num_threads(1 if module.build_info()["omp_max_threads"] != 1 else 2)
    assert timings_for(x) == 1 and timings_for(x) == 0
    if _detected_isa() != "avx512":
        module.set_active_isa("avx512")
        assert timings_for(x) == 1
    entries = json.loads(choice.kernel_cache_file().read_text())["cpus"][choice.cpu_identity()]
    assert len(entries) == len(measured.calls)  # one entry per key
    key = ConvKey("avx512", 2, 1, 12, 12, 32, 32, 3, 1, "float32")
    assert str(key) == "avx512 threads2 n1 h12 w12 cin32 cout32 k3 s1 float32"
    assert str(dataclasses.replace(key, isa="amx_bf16")) != str(key)  # what an avx512-only CPU cannot run above


def test_cpu_identity_is_more_than_the_vendor_name():
    """Two CPUs a VM names alike ("Intel(R) Xeon(R) Processor") are told apart by family / model / stepping and
    by the flags the kernels dispatch on; flags the kernels do not read leave the identity alone."""
    def cpuinfo(model: int, flags: str) -> str:
        return (f"processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: {model}\n"
                f"model name\t: Intel(R) Xeon(R) Processor\nstepping\t: 8\ncache size\t: 16384 KB\n"
                f"flags\t\t: {flags}\n\nprocessor\t: 1\nmodel\t\t: 99\n")

    sapphire = cpu_identity_from(cpuinfo(143, "fpu avx2 fma avx512f avx512bw avx512vl avx512_bf16 amx_tile amx_bf16"))
    assert sapphire == ("Intel(R) Xeon(R) Processor | family 6 model 143 stepping 8 | cache 16384 KB | "
                        "avx2 fma avx512f avx512bw avx512vl avx512_bf16 amx_tile amx_bf16")
    assert cpu_identity_from(cpuinfo(106, "fpu avx2 fma avx512f avx512bw avx512vl")) != sapphire
    assert cpu_identity_from(cpuinfo(143, "avx2 fma avx512f avx512bw avx512vl avx512_bf16")) != sapphire
    assert cpu_identity_from(cpuinfo(143, "sse avx2 fma avx512f avx512bw avx512vl avx512_bf16 amx_tile amx_bf16 "
                                          "avx512_vnni")) == sapphire


@requires_avx512
@pytest.mark.parametrize("contents", ["{not json", "[]", '{"format": 0, "cpus": {}}', '{"format": 1, "cpus": []}'])
def test_a_corrupt_cache_is_measured_again_and_replaced(measured, contents):
    path = choice.kernel_cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(contents)
    ops = NativeOps()
    x, weight, bias = torch.randn(1, 32, 12, 12), torch.randn(32, 32, 3, 3), torch.randn(32)
    with pytest.warns(RuntimeWarning, match="kernel choice cache"):
        ops.conv3x3_bias_relu(x, weight, bias)
    assert len(measured.calls) == 1
    assert len(json.loads(path.read_text())["cpus"][choice.cpu_identity()]) == 1  # rewritten whole
    path.write_text(contents)
    with warnings.catch_warnings(record=True) as warned:  # Python's own once-per-place filter off
        warnings.simplefilter("always")
        ops.conv3x3_bias_relu(torch.randn(2, 32, 12, 12), weight, bias)
    assert not warned and len(measured.calls) == 2  # measured again, warned once per process


@requires_avx512
def test_an_unwritable_cache_does_not_stop_inference(measured, monkeypatch, tmp_path):
    (tmp_path / "a file").write_text("")
    monkeypatch.setenv("ALNET_CACHE_DIR", str(tmp_path / "a file" / "cache"))  # mkdir fails, even for root
    model = folded()
    x = torch.randn(SHAPE)
    with pytest.warns(RuntimeWarning, match="cannot be written"):
        out = NativeOps().run(model, x)
    assert torch.equal(out, model(x, NativeOps()))
    assert any("not cached" in row["why"] for row in alnet_fast.build_info()["cpu"]["conv_kernels"]["convs"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rule_mode_gives_the_fixed_rule(measured, monkeypatch, isa, dtype):
    monkeypatch.setenv(choice.MODE_ENV, "rule")
    plan = NativePlan(NativeOps().cpu, folded(dtype=dtype), SHAPE, dtype)
    assert not measured.calls
    for row, kernel in zip(plan.kernel_report(), choices_of(plan)):
        assert row == kernel.as_dict() and row["isa"] == isa
        assert (row["kernel"] == "winograd_avx512") == rule_winograd(kernel.key)
        assert row["why"].startswith("rule (ALNET_FAST_KERNEL_CHOICE=rule)") == rule_winograd(kernel.key)


def test_an_unknown_mode_is_an_error(monkeypatch):
    monkeypatch.setenv(choice.MODE_ENV, "fastest")
    with pytest.raises(ValueError, match="ALNET_FAST_KERNEL_CHOICE must be one of"):
        NativeOps().conv3x3_bias_relu(torch.randn(1, 32, 8, 8), torch.randn(32, 32, 3, 3), torch.randn(32))


@requires_avx512
@pytest.mark.parametrize("faster", ["direct", "winograd"])
def test_measured_plan_matches_op_by_op_and_the_multibranch_model(measured, faster):
    """Whichever kernel wins, the plan and the op-by-op run take the same one (bit-identical), and the output
    keeps the plan parity tests' bound against the multi-branch model."""
    measured.seconds = {"winograd": 1e-3 if faster == "winograd" else 2e-3, "direct": 1.5e-3}
    model = random_alnet(ALNetConfig(), seed=5)
    x = torch.randn(2, 3, 64, 96)
    ops = NativeOps()
    with torch.no_grad():
        ref = model(x)
        first = ops.run(reparameterize(model), x)  # op by op: the choices are made here
    folded_model = reparameterize(model)
    ops = NativeOps()
    ops.run(folded_model, x)
    out = ops.run(folded_model, x)  # the plan
    plan = next(iter(ops._plans.values()))[1]
    measured_kernels = [row["kernel"] for row in plan.kernel_report() if row["why"].startswith("measured")]
    assert measured_kernels and set(measured_kernels) == {f"{faster}_avx512"}
    assert torch.equal(out, first) and torch.equal(out, folded_model(x, NativeOps()))
    assert within_parity_bound(out, ref)


def test_build_info_lists_each_conv_with_a_reason(measured):
    seg = alnet_fast.load(random_alnet(ALNetConfig(), seed=1), backend="native", device="cpu")
    seg.logits(torch.rand(*SHAPE))
    seg.logits(torch.rand(*SHAPE))  # the plan
    plan = next(iter(seg.ops._plans.values()))[1]
    info = alnet_fast.build_info()["cpu"]["conv_kernels"]
    assert info["mode"] == "measure" and info["cache"] == str(choice.kernel_cache_file())
    assert info["cpu"] == choice.cpu_identity()
    listed = {row["shape"]: row for row in info["convs"]}
    assert {row["shape"] for row in plan.kernel_report()} <= set(listed)
    assert len(plan.kernel_report()) == 22 + 6  # encoder and decoder convs (the Lite R-ASPP gate is its own kernel)
    for row, kernel in zip(plan.kernel_report(), choices_of(plan)):
        key = kernel.key
        assert listed[row["shape"]] == row and row["why"]
        if key.stride == 2:
            assert row["why"].startswith("stride 2")
        if key.cin <= 4 and key.ksize == 3:
            assert row["kernel"].startswith("im2col") and "cin <= 4" in row["why"]
        if key.ksize == 1:
            assert row["why"].startswith("1x1")
        assert (row["kernel"] == "winograd_avx512" or row["why"].startswith("measured")) <= rule_winograd(key)


@requires_avx512
def test_bf16_convs_say_why_not_winograd(measured):
    plan = NativePlan(NativeOps().cpu, folded(dtype=torch.bfloat16), SHAPE, torch.bfloat16)
    assert not measured.calls
    assert all(row["why"].startswith("bfloat16: Winograd is fp32 only") for row in plan.kernel_report())
    assert all(row["kernel"].endswith(native.cpu_module().conv_kernel("bfloat16")) for row in plan.kernel_report())


@requires_avx512
@pytest.mark.parametrize("cin", [16, 32, 40, 48])
@pytest.mark.parametrize("cout", [24, 32, 64])
@pytest.mark.parametrize("k, stride", [(3, 1), (3, 2), (1, 1)])
def test_the_reasons_follow_the_modules_rule(cin, cout, k, stride):
    """why_not_winograd names a shape condition exactly where the CPU module's rule rejects the shape."""
    isa = native.cpu_module().build_info()["isa_active"]
    why = why_not_winograd(ConvKey(isa, 2, 1, 8, 8, cin, cout, k, stride, "float32"))
    assert native.cpu_module().conv_uses_winograd(cin, cout, k, stride) == why.startswith(f"{isa}:")


def test_time_runs_takes_turns_and_keeps_the_fastest(monkeypatch):
    calls = []
    runs = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    monkeypatch.setattr(choice, "ROUNDS_BUDGET_S", 0.0)
    best = choice.time_runs(runs)
    assert calls == ["a", "b"] * (1 + choice.MIN_ROUNDS)  # a warm-up, then MIN_ROUNDS rounds
    assert set(best) == {"a", "b"} and all(0 <= s < float("inf") for s in best.values())
    calls.clear()
    monkeypatch.setattr(choice, "ROUNDS_BUDGET_S", float("inf"))
    choice.time_runs(runs)
    assert calls == ["a", "b"] * (1 + choice.MAX_ROUNDS)


def test_direct_replaces_winograd_only_when_clearly_faster():
    from alnet_fast.backends.native.choice import SWITCH_RATIO, WINOGRAD_KERNEL, faster_kernel

    close = {WINOGRAD_KERNEL: 1.0, "direct_avx512": (1 + SWITCH_RATIO) / 2}  # faster, but within the noise margin
    clear = {WINOGRAD_KERNEL: 1.0, "direct_avx512": SWITCH_RATIO * 0.99}
    assert faster_kernel(close, "direct_avx512") == WINOGRAD_KERNEL
    assert faster_kernel(clear, "direct_avx512") == "direct_avx512"


# --- bf16 plans: the bf16 kernels or, where measured faster, the fp32 kernels on the weights' bf16 values ---

def _bf16_run(ops: NativeOps, model, x: torch.Tensor) -> torch.Tensor:
    """Two calls, as Segmenter makes them: the first runs op by op and builds the plan, the second runs it."""
    ops.run(model, x)
    return ops.run(model, x)


@pytest.mark.parametrize("faster", ["fp32", "bf16"])
def test_bf16_input_runs_on_the_kernels_measured_faster(measured, faster):
    measured.seconds.update(bf16=1.0 if faster == "bf16" else 2.0, fp32=1.0 if faster == "fp32" else 2.0)
    model = folded(seed=3, dtype=torch.bfloat16)
    x = torch.randn(SHAPE).to(torch.bfloat16)
    y = _bf16_run(NativeOps(), model, x)
    plans = choice.PROCESS_CHOICES.report(choice.PlanKey)
    assert [c.kernel for c in plans] == [f"{faster}_kernels"]
    assert plans[0].why.startswith(f"measured {faster}_kernels 1000.000 ms vs ")
    assert sum(kernels == ("bf16_kernels", "fp32_kernels") for kernels in measured.calls) == 1  # timed once
    twin = model.float()  # the fp32 kernels run the bf16 weights' values, exactly (bf16 -> fp32 is exact)
    expected = (_bf16_run(NativeOps(), twin, x.float()).to(torch.bfloat16) if faster == "fp32" else
                _bf16_run(NativeOps(), folded(seed=3, dtype=torch.bfloat16), x))
    assert y.dtype == torch.bfloat16 and torch.equal(y, expected)
    info = native.build_info()["cpu"]["conv_kernels"]["bf16_plans"]
    assert [row["kernel"] for row in info] == [f"{faster}_kernels"]


def test_bf16_runs_on_fp32_kernels_keep_the_mask_of_the_training_model(measured):
    measured.seconds.update(bf16=2.0, fp32=1.0)
    torch.manual_seed(0)
    multi = random_alnet(ALNetConfig(), 11)
    x = torch.randn(SHAPE)
    with torch.no_grad():
        reference = multi(x) > 0
    y = _bf16_run(NativeOps(), reparameterize(multi).to(torch.bfloat16), x.to(torch.bfloat16))
    mask = y.float() > 0
    # bf16 weights and input (8-bit mantissas) against the fp32 multi-branch model: masks compared by Dice,
    # the bf16 bound of the end-to-end tests (>= 0.99)
    dice = 2 * (mask & reference).sum() / (mask.sum() + reference.sum())
    assert dice >= 0.99, dice


def test_bf16_fp32_twin_follows_weight_changes(measured):
    measured.seconds.update(bf16=2.0, fp32=1.0)
    model, ops = folded(seed=4, dtype=torch.bfloat16), NativeOps()
    x = torch.randn(SHAPE).to(torch.bfloat16)
    before = _bf16_run(ops, model, x)
    with torch.no_grad():
        next(model.parameters()).mul_(0.5)
    after = ops.run(model, x)
    assert not torch.equal(after, before)
    assert torch.equal(after, _bf16_run(NativeOps(), model.float(), x.float()).to(torch.bfloat16))


def test_rule_mode_runs_bf16_inputs_on_the_bf16_kernels_without_timing(measured, monkeypatch):
    monkeypatch.setenv(choice.MODE_ENV, "rule")
    _bf16_run(NativeOps(), folded(seed=5, dtype=torch.bfloat16), torch.randn(SHAPE).to(torch.bfloat16))
    assert measured.calls == []
    assert [c.kernel for c in choice.PROCESS_CHOICES.report(choice.PlanKey)] == ["bf16_kernels"]

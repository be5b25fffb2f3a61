"""GPU benchmark of one folded AL-Net: each entry checked against the fp32 multi-branch model, then timed.

Entries, per dtype (fp16, bf16) and batch (1, 32) at 512x512: the Triton backend eager and as CUDA graphs,
the torch backend (cuDNN, channels_last), and torch.compile of the folded graph on PyTorch ops. Each is
first compared with the multi-branch fp32 model (on the GPU with TF32 off): max|diff| / max|ref| and the
Dice of the masks at logit 0, against the GPU tier's bounds (tests/test_gpu_triton.py). Then the
device-side forward (no host copies) is timed with triton.testing.do_bench (median).

Results are rewritten after every entry (atomically) to OUT/gpu_bench.json, so a run cut short by a
timeout still leaves everything measured so far. Without CUDA (``--dry-run`` on CPU) the same flow runs at
64x64, batch 1, fp32 on the torch backend only, and every GPU entry is recorded as skipped with the reason.

    python bench/gpu_bench.py --out OUT [--dry-run] [--size 512] [--batches 1 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import alnet_fast
from alnet_fast.atomic import atomic_path
from alnet_fast.testing import dice, random_alnet

# max|diff| / max|ref| and Dice floors per dtype: the GPU tier's model bounds (tests/test_gpu_triton.py).
TOLERANCE = {torch.float32: 1e-2, torch.float16: 2e-2, torch.bfloat16: 1e-1}
DICE_FLOOR = {torch.float32: 0.99, torch.float16: 0.99, torch.bfloat16: 0.95}
ENTRIES = ("triton eager", "triton graphs", "torch cudnn channels_last", "torch.compile")


class Report:
    """Results so far, rewritten whole to ``path`` after each addition."""

    def __init__(self, path: Path, meta: dict):
        self.path, self.data = path, {"meta": meta, "results": []}
        self._write()

    def add(self, **result) -> None:
        self.data["results"].append(result)
        print(json.dumps(result), flush=True)
        self._write()

    def _write(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, default=str))


def forward_for(entry: str, model, device: torch.device, dtype: torch.dtype):
    """(device-side forward x -> logits, seconds spent building it) for one benchmark entry."""
    start = time.perf_counter()
    if entry == "torch.compile":
        folded = alnet_fast.reparameterize(model).to(device, dtype).to(memory_format=torch.channels_last)
        fn = torch.compile(folded)
    else:
        backend = "torch" if entry.startswith("torch") else "triton"
        seg = alnet_fast.load(model, backend=backend, device=device, dtype=dtype,
                              cuda_graphs=entry == "triton graphs")
        fn = seg.graphs if seg.graphs is not None else seg._forward
    return fn, time.perf_counter() - start


def check(out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> dict:
    out, ref = out.float().cpu(), ref.float().cpu()
    rel = (out - ref).abs().max().item() / ref.abs().max().item()
    d = dice((out > 0).numpy(), (ref > 0).numpy())
    return dict(rel_err=rel, dice=d, ok=rel <= TOLERANCE[dtype] and d >= DICE_FLOOR[dtype])


def time_forward(fn, x: torch.Tensor) -> float:
    """Median milliseconds of fn(x) on the device."""
    if x.is_cuda:
        import triton.testing

        return triton.testing.do_bench(lambda: fn(x), warmup=10, rep=100, return_mode="median")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def run(out_dir: Path, size: int, batches: list[int], dtypes: list[torch.dtype]) -> Report:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    meta = dict(device=torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
                torch=torch.__version__, alnet_fast=str(alnet_fast.__version__), size=size)
    report = Report(out_dir / "gpu_bench.json", meta)
    model = random_alnet(seed=11)
    inputs, refs = {}, {}
    for batch in batches:
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            if not refs:
                model.decoder.classifier.bias -= model(x[:1]).median()  # about half the pixels foreground
            torch.backends.cudnn.allow_tf32 = False  # the reference is exact fp32, also on the GPU
            inputs[batch], refs[batch] = x, model.to(device)(x.to(device)).cpu()
            torch.backends.cudnn.allow_tf32 = True
            model.cpu()
    # torch.compile last: its compiles are the slowest, and a timeout should cut them, not our entries
    for entries in (ENTRIES[:-1], ENTRIES[-1:]):
        for batch, dtype, entry in ((b, d, e) for b in batches for d in dtypes for e in entries):
            xd = inputs[batch].to(device, dtype).contiguous(memory_format=torch.channels_last)
            where = dict(entry=entry, dtype=str(dtype)[6:], batch=batch)
            if device.type != "cuda" and entry != "torch cudnn channels_last":
                report.add(**where, skipped="needs a CUDA device; none is visible")
                continue
            try:
                with torch.inference_mode():
                    fn, build_s = forward_for(entry, model, device, dtype)
                    start = time.perf_counter()
                    result = check(fn(xd), refs[batch], dtype)  # first call: compiles, captures
                    first_call_s = time.perf_counter() - start
                    ms = time_forward(fn, xd) if result["ok"] else None
            except Exception as exc:  # one entry failing must not lose the others' results
                report.add(**where, error=f"{type(exc).__name__}: {exc}")
                continue
            report.add(**where, **result, build_s=build_s, first_call_s=first_call_s, ms=ms,
                       images_per_s=None if ms is None else batch / ms * 1e3)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu_bench.json")
    parser.add_argument("--dry-run", action="store_true", help="without CUDA: 64x64, batch 1, fp32, torch only")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args(argv)
    if args.dry_run and not torch.cuda.is_available():
        report = run(args.out, 64, [1], [torch.float32])
    else:
        report = run(args.out, args.size, args.batches, [torch.float16, torch.bfloat16])
    failed = [r for r in report.data["results"] if "error" in r or r.get("ok") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

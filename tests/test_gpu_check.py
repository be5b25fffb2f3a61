"""The prepared device check, scripts/gpu_check.sh, in its dry run: on CPU its GPU parts skip with the
reason, the benchmark runs its CPU entry through the same check-then-time flow, and the results land in
$OUT. On a CUDA machine this test is skipped: the real check is run by hand (it installs the package)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is the CPU form of the check")
def test_gpu_check_dry_run_writes_its_results(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "needs a CUDA device; none is visible" in (tmp_path / "gpu_tests.log").read_text()
    assert (tmp_path / "gpu_tests.xml").exists() and (tmp_path / "versions.txt").read_text().startswith("alnet_fast")
    results = json.loads((tmp_path / "gpu_bench.json").read_text())["results"]
    assert {r["entry"] for r in results} == {"triton eager", "triton graphs", "torch cudnn channels_last",
                                             "torch.compile"}
    (measured,) = [r for r in results if "skipped" not in r]
    assert measured["ok"] and measured["rel_err"] < 1e-4 and measured["ms"] > 0

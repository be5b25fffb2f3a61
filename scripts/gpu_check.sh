#!/usr/bin/env bash
# The prepared device check (issue #17): install, the GPU test tier, then bench/gpu_bench.py; everything
# it learns is written under $OUT as it goes, so a run cut short still returns what it measured.
#
#   OUT=/some/dir scripts/gpu_check.sh            # on a GPU machine (no network): fits one 8-minute call
#   OUT=/some/dir scripts/gpu_check.sh --dry-run  # on CPU: no install, GPU tests skip, bench at 64x64
#
# pytest runs verbose, so a tier cut short by its limit still logs each finished test.
# Budget (seconds, overridable): install as long as it takes (nvcc); the tests GPU_TEST_S (default 210)
# but never more than leaves 150 for the benchmark; the benchmark whatever is left of TOTAL_S (default 450,
# i.e. 7.5 minutes), at least 30.
set -uo pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
PY="${PYTHON:-python3}"
START=$SECONDS
log() { echo "[gpu_check $(date -u +%H:%M:%S) +$((SECONDS - START))s] $*" | tee -a "$LOG"; }

log "repo $REPO, out $OUT, dry run $DRY"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || log "nvidia-smi unavailable"
if [[ $DRY == 0 ]]; then
    log "pip install --no-build-isolation --no-deps --no-index ."
    if ! "$PY" -m pip install --no-build-isolation --no-deps --no-index "$REPO" >"$OUT/install.log" 2>&1; then
        log "install FAILED (tail of install.log follows)"; tail -n 30 "$OUT/install.log" | tee -a "$LOG"; exit 1
    fi
fi
# Run from $OUT so that `import alnet_fast` finds the installed package, not the source tree.
cd "$OUT" || exit 1
"$PY" -c "import alnet_fast, torch, triton; print('alnet_fast', alnet_fast.__version__, alnet_fast.build_info()); \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" 2>&1 | tee "$OUT/versions.txt"

if "$PY" -c "import pytest" 2>/dev/null; then
    TEST_S=$(( ${TOTAL_S:-450} - 150 - (SECONDS - START) ))
    (( TEST_S > ${GPU_TEST_S:-210} )) && TEST_S=${GPU_TEST_S:-210}
    (( TEST_S < 30 )) && TEST_S=30
    log "GPU test tier (pytest -m gpu, limit ${TEST_S}s)"
    timeout "$TEST_S" "$PY" -m pytest "$REPO/tests" -m gpu -v -rs --durations=15 -p no:cacheprovider \
        --junitxml="$OUT/gpu_tests.xml" >"$OUT/gpu_tests.log" 2>&1
    TESTS_RC=$?
    tail -n 25 "$OUT/gpu_tests.log" | tee -a "$LOG"
    log "GPU tests rc=$TESTS_RC"
else
    TESTS_RC=1
    log "GPU tests NOT RUN: pytest is not installed in $PY (the benchmark still runs)"
fi

BENCH_S=$(( ${TOTAL_S:-450} - (SECONDS - START) ))
(( BENCH_S < 30 )) && BENCH_S=30
log "benchmark (limit ${BENCH_S}s)"
DRY_FLAG=()
[[ $DRY == 1 ]] && DRY_FLAG=(--dry-run)
timeout "$BENCH_S" "$PY" "$REPO/bench/gpu_bench.py" --out "$OUT" "${DRY_FLAG[@]}" >"$OUT/gpu_bench.log" 2>&1
BENCH_RC=$?
tail -n 20 "$OUT/gpu_bench.log" | tee -a "$LOG"
log "benchmark rc=$BENCH_RC; results in $OUT/gpu_bench.json"
(( TESTS_RC == 0 && BENCH_RC == 0 ))

#!/usr/bin/env bash
# Run every benchmark once. `--quick`: small sizes, a few minutes on a CPU, so that a new
# machine (a GPU one: device `auto` picks CUDA) can be checked quickly; results then go to
# benchmarks/results/quick/ and leave the full results alone.
#   bash benchmarks/run_all.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-AVX512_CORE_BF16}
if [ -d ../shared/data ]; then
  export COLDFLOW_DATA=${COLDFLOW_DATA:-$(cd ../shared/data && pwd)}
  export COLDFLOW_WEIGHTS=${COLDFLOW_WEIGHTS:-$COLDFLOW_DATA/weights}
fi
QUICK=()
OUT=benchmarks/results
SIMULATE=(--configs configs/fluids/karman.yaml configs/fluids/plume.yaml)
if [ "${1:-}" = "--quick" ]; then
  QUICK=(--quick)
  OUT=benchmarks/results/quick
  SIMULATE=(--configs configs/fluids/karman_tiny.yaml configs/fluids/plume_tiny.yaml)
fi
mkdir -p "$OUT"
start=$SECONDS
run() {  # name, then the command; a failure is reported and fails the script at the end
  local name=$1 t0=$SECONDS
  shift
  echo "== $name"
  if "$@"; then
    echo "== $name: done in $((SECONDS - t0)) s"
  else
    echo "== $name: FAILED"
    failed+=("$name")
  fi
}
failed=()
run blur "$PY" benchmarks/bench_blur.py "${QUICK[@]}" --out "$OUT/blur.json"
run losses "$PY" benchmarks/bench_losses.py "${QUICK[@]}" --out "$OUT/losses.json"
run mnist "$PY" benchmarks/bench_mnist.py "${QUICK[@]}" --out "$OUT/mnist.json"
run sol "$PY" benchmarks/bench_sol.py "${QUICK[@]}" --out "$OUT/sol.json"
run book "$PY" benchmarks/bench_book.py "${QUICK[@]}" --out "$OUT/book.json"
run scale "$PY" benchmarks/bench_scale.py "${QUICK[@]}" --out "$OUT/scale.json"
if [ ${#QUICK[@]} -gt 0 ]; then  # the full study sets take many minutes: `make bench-simulate`
  run simulate "$PY" benchmarks/bench_simulate.py "${SIMULATE[@]}" --out "$OUT/simulate.json"
fi
echo "all benchmarks: $((SECONDS - start)) s; results in $OUT/"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi

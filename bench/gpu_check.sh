#!/usr/bin/env bash
# The GPU check, one command on a machine with a CUDA GPU (README: Speed), well inside 10
# minutes: the CUDA tests, the VAE speed bench against pytorch/examples' loop, one MultiMNIST
# cell timed on the GPU, and the step-overhead bench (mtlrun's step against a bare loop). Each
# table goes into OUT (default bench/gpu_results) as Markdown, with nvidia-smi's line; copy the
# figures into BENCHMARKS.md with the commit and the date.
#
#   bash bench/gpu_check.sh [OUT]
#
# Needs mtlrun's dependencies importable by $PYTHON (default: .venv/bin/python, else python3).
# On a machine that cannot install them, carry them as wheels in .whl/ (bench/gpu_wheels.sh
# downloads them here): they are installed into a temporary folder first. The MNIST benches
# need MNIST under $MTLRUN_DATA (torchvision's layout); without it they are skipped, and the
# table says so.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/gpu_results}
mkdir -p "$OUT"
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/mtlrun-site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/mtlrun-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME SECONDS COMMAND...: run, keep its output, note a failure and go on
  local name=$1 limit=$2
  shift 2
  echo "== $name" | tee -a "$OUT/summary.md"
  if timeout "$limit" "$@" >"$OUT/$name.md" 2>&1; then
    echo "ok" | tee -a "$OUT/summary.md"
  else
    echo "FAILED (exit $?): see $name.md" | tee -a "$OUT/summary.md"
    status=1
  fi
  tail -n 25 "$OUT/$name.md"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | tee "$OUT/summary.md"
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'" || exit 1
step cuda_tests 180 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py
step step_overhead 180 "$PYTHON" bench/step_overhead.py --device cuda --quick
if [ -d "${MTLRUN_DATA:-/nonexistent}/MNIST/raw" ]; then
  step vae_speed 150 "$PYTHON" bench/vae_speed.py --device cuda --repeats 1 --no-write
  step multimnist_cell 150 "$PYTHON" bench/multimnist_table.py --only hard_equal,hard_upgrad \
    --seeds 0 --no-write --work "$(mktemp -d)" device=cuda trainer.epochs=3
else
  echo "== vae_speed, multimnist_cell: skipped, no MNIST under MTLRUN_DATA" | tee -a "$OUT/summary.md"
fi
exit $status

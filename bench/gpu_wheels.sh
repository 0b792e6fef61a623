#!/usr/bin/env bash
# mtlrun's dependencies that a GPU machine's image lacks (it has torch, torchvision, numpy,
# scipy, matplotlib, rich, pytest), as wheels in .whl/ for bench/gpu_check.sh to install there:
# run here, where pip reaches PyPI, for that machine's Python (default 3.12, x86-64 Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${GPU_PYTHON_VERSION:-3.12}
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
pip_download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "$@"
}
pip_download hydra-core==1.3.2 omegaconf==2.3.0 torchjd==0.18.0 filelock pyyaml
# antlr4's runtime (Hydra's override grammar) ships as a source archive only: build its wheel.
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
# torchjd's extras used by the step-overhead bench's methods (UPGrad's projector).
pip_download quadprog qpsolvers
ls .whl

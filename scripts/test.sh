#!/usr/bin/env bash
# Sets up, builds with warnings as errors, and runs every test (ctest). Long checks carry the
# label "long" and are left out; run them with: ctest --test-dir build -L long
# Where the CUDA toolkit's nvcc is, it then also builds build-cuda/ against pip's CUDA LibTorch
# 2.11 (scripts/setup.sh --cuda installs it, once) with warnings as errors and runs that build's
# C++ unit tests (label "unit"): they run on the CPU, so LibTorch 2.x's side of the
# version-guarded code runs here too, GPU or not.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh -DDENSENET_WERROR=ON
ctest --test-dir build --output-on-failure -j "$(nproc)" -LE long

nvcc=${CUDA_HOME:-/usr/local/cuda}/bin/nvcc
if [ ! -x "$nvcc" ] && ! nvcc=$(command -v nvcc); then
  echo "test: no nvcc (CUDA toolkit), so no CUDA build: build-cuda/ skipped"
  exit 0
fi
./scripts/setup.sh --cuda
CUDA_HOME=$(dirname "$(dirname "$nvcc")") ./scripts/build.sh --cuda -DDENSENET_WERROR=ON
ctest --test-dir build-cuda --output-on-failure -j "$(nproc)" -L unit

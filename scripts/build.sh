#!/usr/bin/env bash
# Configures and builds into build/ (extra arguments go to cmake, e.g. -DDENSENET_WERROR=ON or
# -DCMAKE_PREFIX_PATH=<LibTorch 2.x>).
#   --cuda  builds into build-cuda/ instead, against pip's CUDA LibTorch that
#           scripts/setup.sh --cuda installs and the CUDA toolkit at ${CUDA_HOME:-/usr/local/cuda}
#           (for TORCH_CUDA_ARCH_LIST 9.0, the lent H200, unless given).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
args=()
if [ "${1:-}" = --cuda ]; then
  shift
  source scripts/cuda_venv.sh
  python="$densenet_cuda_venv/bin/python"
  prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null) || {
    echo "build: no torch in $densenet_cuda_venv: run scripts/setup.sh --cuda" >&2
    exit 1
  }
  cuda=${CUDA_HOME:-/usr/local/cuda}
  build=build-cuda
  # Also the torch directory itself (prefix/../..): TorchConfig finds libtorch.so and libc10.so
  # with find_library, which looks in CMAKE_PREFIX_PATH's lib/ before the system's, but in its
  # own PATHS hint only after them, where Debian's libtorch-dev 1.13 would be found.
  # OpenMP: the wheel's own libgomp, which its libtorch_cpu loads (one runtime in the process,
  # which the RUNPATH would pick at run time anyway), rather than g++'s.
  torch_dir=${prefix%/share/cmake}
  args=(-DCMAKE_PREFIX_PATH="$prefix;$torch_dir" -DCUDAToolkit_ROOT="$cuda"
        -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc" -DTORCH_CUDA_ARCH_LIST=9.0
        -DOpenMP_gomp_LIBRARY="$torch_dir/lib/libgomp.so.1")
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${args[@]}" "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"

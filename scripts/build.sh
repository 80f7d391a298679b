#!/usr/bin/env bash
# Configures and builds into build/ (extra arguments go to cmake, e.g. -DDENSENET_WERROR=ON or
# -DCMAKE_PREFIX_PATH=<LibTorch 2.x>).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$(nproc)"

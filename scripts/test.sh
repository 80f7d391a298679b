#!/usr/bin/env bash
# Sets up, builds with warnings as errors, and runs every test (ctest). Long checks carry the
# label "long" and are left out; run them with: ctest --test-dir build -L long
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh -DDENSENET_WERROR=ON
ctest --test-dir build --output-on-failure -j "$(nproc)" -LE long

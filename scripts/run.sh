#!/usr/bin/env bash
# The main job: set up, build, and train the default configuration (configs/fashion-mnist.yaml:
# DenseNet-BC-40 on Debian's Fashion-MNIST, on the CPU). Extra arguments go to `densenet train`,
# e.g. ./scripts/run.sh --epochs 1, or --config configs/cifar10.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
exec ./build/densenet train "$@"

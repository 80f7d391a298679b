#!/usr/bin/env bash
# The main job: set up, build, and describe the default model for Fashion-MNIST
# (DenseNet-BC-100 on 1x28x28 inputs). Training arrives with the training issue.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
./build/densenet info --arch densenet-bc-100 --in-channels 1 --input-size 28 --num-classes 10

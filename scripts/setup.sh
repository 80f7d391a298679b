#!/usr/bin/env bash
# Installs what building, running and testing densenet needs on Debian 12. Idempotent: only
# missing packages are installed, and nothing runs apt when everything is present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build clang-format
  libtorch-dev           # LibTorch 1.13 (CPU)
  libgloo-dev            # Gloo's headers, which c10d's ProcessGroupGloo.hpp includes (data-parallel)
  libopenblas0-pthread   # Debian's default reference BLAS is ~20x slower
  libgtest-dev nlohmann-json3-dev
  libcli11-dev libyaml-cpp-dev  # command-line options and training configs
  libcairo2-dev          # the training-curve image
  libprotobuf-dev protobuf-compiler  # TensorBoard event files (LibTorch links the same libprotobuf)
  dataset-fashion-mnist  # the default training data (/usr/share/datasets/fashion-mnist)
  zlib1g-dev libjpeg62-turbo-dev libpng-dev  # checkpoints (zip CRC-32), JPEG and PNG images
  clang libclang-rt-14-dev  # libFuzzer, ASan and UBSan for the checkpoint reader's fuzz test
  python3-torch python3-torchvision python3-numpy python3-pil  # test data only, never at run time
  python3-scipy          # tests only: writes the fake ImageNet devkit's meta.mat
  iproute2               # tests only: two machines in network namespaces (ip netns, veth)
  python3-venv           # tests only: the venv of PyPI test tools (scripts/tools_venv.sh: TensorBoard)
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# LibTorch links libblas.so.3; make sure the alternative resolves to OpenBLAS.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "setup: warning: libblas.so.3 resolves to '$blas', not OpenBLAS; training will be slow." \
          "Run: sudo update-alternatives --config libblas.so.3-x86_64-linux-gnu" >&2 ;;
esac

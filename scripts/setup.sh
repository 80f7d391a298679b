#!/usr/bin/env bash
# Installs what building, running and testing densenet needs on Debian 12. Idempotent: only
# missing packages are installed, and nothing runs apt when everything is present.
#   --cuda  also installs pip's CUDA LibTorch (torch 2.11.0, CUDA 13.0, about 4.6 GB) into a
#           virtual environment outside the tree (scripts/cuda_venv.sh: $DENSENET_CUDA_VENV, by
#           default ~/.cache/densenet/torch-2.11.0) for the CUDA build, ./scripts/build.sh
#           --cuda. A second run finds the installed version and downloads nothing.
#           ./scripts/run.sh never asks for it.
#   --bench does --cuda, then adds to that virtual environment what the PyTorch benchmarks
#           (bench/*.py against today's PyTorch) need beside its torch: torchvision 0.26.0, timm,
#           numpy, pillow, pinned in scripts/bench-requirements.txt (about 34 MB of wheels, 134 MB installed).
#           Installed with --no-deps, so the venv's torch stays 2.11.0; checked after. A second
#           run finds the pinned versions and downloads nothing. Neither the build, the tests
#           nor ./scripts/run.sh need it.
set -euo pipefail

cuda=0 bench=0
case "${1:-}" in
  --cuda) cuda=1 ;;
  --bench) cuda=1 bench=1 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--cuda | --bench]" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build clang-format
  libtorch-dev           # LibTorch 1.13 (CPU)
  libgloo-dev            # Gloo's headers, which c10d's ProcessGroupGloo.hpp includes (data-parallel)
  libopenblas0-pthread   # Debian's default reference BLAS is ~20x slower
  libdnnl-dev            # oneDNN 2.6: the stages' GEMMs (kernels from the CPU's features, bf16)
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
if ((cuda)); then
  packages+=(python3-venv)  # the CUDA LibTorch's virtual environment (pip's torch)
fi

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

((cuda)) || exit 0

# pip's torch 2.11.0 on PyPI is the CUDA 13.0 build (2.11.0+cu130: nvidia-*-cu13 wheels, cuDNN
# 9.19), the same LibTorch as the lent GPU machine's and the same CUDA major as the toolkit the
# CUDA build compiles with; the check below refuses anything else.
source "$(dirname "$0")/cuda_venv.sh"
torch_version=$densenet_torch_version
venv=$densenet_cuda_venv
installed() {  # prints "VERSION CUDA" of the venv's torch, or nothing
  [ -x "$venv/bin/python" ] || return 0
  "$venv/bin/python" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null ||
    true
}

# Installs torch==$torch_version into $venv unless it is there; exits 1 if it is not after.
install_torch() {
  local have
  have=$(installed)
  case "$have" in
    "$torch_version+"*" 13."*) return 0 ;;
  esac
  if [ -e "$venv" ] && [ ! -e "$venv/pyvenv.cfg" ]; then
    echo "setup: $venv exists and is not a virtual environment; remove it or set DENSENET_CUDA_VENV" >&2
    exit 1
  fi
  echo "setup: installing torch==$torch_version (CUDA, ~4.6 GB) into $venv${have:+ (found: $have)}"
  mkdir -p "$(dirname "$venv")"
  [ -e "$venv/pyvenv.cfg" ] || python3 -m venv "$venv"
  # --no-cache-dir: the wheels would otherwise be kept a second time in pip's cache.
  "$venv/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check \
    "torch==$torch_version"
  check_torch
}

check_torch() {  # the venv's torch must still be $torch_version with CUDA 13
  local have
  have=$(installed)
  case "$have" in
    "$torch_version+"*" 13."*) echo "setup: torch $have in $venv" ;;
    *) echo "setup: $venv has torch '$have', not $torch_version with CUDA 13" >&2; exit 1 ;;
  esac
}

# The benchmarks' packages (scripts/bench-requirements.txt), unless every pin is installed already.
install_bench_packages() {
  local requirements missing
  requirements="$(cd "$(dirname "$0")" && pwd)/bench-requirements.txt"
  # Prints the pins whose installed version differs (importlib.metadata: no pip, no network).
  missing=$("$venv/bin/python" - "$requirements" <<'PY'
import importlib.metadata as metadata, sys
for line in open(sys.argv[1]):
    pin = line.split("#", 1)[0].strip()
    if not pin:
        continue
    name, version = pin.split("==")
    try:
        if metadata.version(name) == version:
            continue
    except metadata.PackageNotFoundError:
        pass
    print(pin)
PY
)
  [ -n "$missing" ] || return 0
  echo "setup: installing" $missing "into $venv (--no-deps: its torch stays)"
  "$venv/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check --no-deps \
    -r "$requirements"
  check_torch
  "$venv/bin/python" -c 'import torchvision, timm, numpy, PIL
print("setup: torchvision %s, timm %s, numpy %s, pillow %s" % (
    torchvision.__version__, timm.__version__, numpy.__version__, PIL.__version__))'
}

install_torch
((bench)) || exit 0
install_bench_packages

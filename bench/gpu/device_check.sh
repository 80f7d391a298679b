#!/bin/bash
# One call on a lent GPU machine (see docs/BENCHMARKS.md, "GPU"): runs the CLI built here against
# pip's CUDA LibTorch 2.11 (build-cuda/, packed into .devdeps/ with the libraries that machine may
# lack), checks the CUDA kernels against the CPU path (densenet_cuda_tests, first) and the CUDA
# code paths against the naive mode, then measures our three modes and PyTorch's DenseNets in
# the same run. Logs and JSON rows go to $OUT.
#   here:  ./scripts/test.sh (or ./scripts/build.sh --cuda), then bash bench/gpu/make_devdeps.sh
#   there: bash bench/gpu/device_check.sh [short|verify|amp]      (device tool, carry .devdeps)
#          (short: without the autotuned and profile runs; verify: gradchecks and one bench, on
#          the GPU and on the CPU; amp: mixed precision only, against torchvision densenet121
#          with the same autocast, and a short fp16 training run with the loss scaler; every
#          mode: a data-parallel run on NCCL, world size 1, as one GPU allows)
# Without a GPU (a dry run here, before spending device time) it runs what it can on the CPU
# under LibTorch 2.11 (gradcheck, bench, bf16 autocast) and lists what it skipped.
set -u -o pipefail
MODE=${1:-full}
case "$MODE" in
  full | short | verify | amp) ;;
  *) echo "usage: bench/gpu/device_check.sh [full|short|verify|amp]" >&2; exit 2 ;;
esac
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
START=$(date +%s)
stamp() { echo "== [$(($(date +%s) - START))s] $*"; }

D=$PWD/.devdeps
B=$D/bin/densenet
K=$D/bin/densenet_cuda_tests  # the CUDA kernels' GPU test (tests/kernels/test_bn_relu_cuda.cpp)
for program in "$B" "$K"; do
  [ -x "$program" ] || { echo "no $program: run bench/gpu/make_devdeps.sh and carry .devdeps"; exit 1; }
done
# A Python with torch 2.11: the machine's own (the GPU machine's pip torch, with torchvision),
# else the CUDA build's virtual environment (a dry run where the build was made).
torch_2_11() { "$1" -c 'import sys, torch; sys.exit(not torch.__version__.startswith("2.11."))' 2>/dev/null; }
PY=python3
if ! torch_2_11 "$PY"; then
  source scripts/cuda_venv.sh
  PY=$densenet_cuda_venv/bin/python
  torch_2_11 "$PY" || { echo "no Python with torch 2.11 (python3, $PY)"; exit 1; }
fi
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null)

# The CUDA runtime that LibTorch loads (the wheel's nvidia/cu13/lib), which the programs' own
# kernels (bn_relu.cu) call too: one runtime in the process.
CUDART_DIR=$(ldd "$TORCH_LIB/libtorch_cuda.so" 2>/dev/null | awk '/libcudart\.so/ {print $3}')
CUDART_DIR=${CUDART_DIR:+$(dirname "$CUDART_DIR")}

# LibTorch from that torch; of the carried libraries only those this machine lacks (links in a
# directory of their own), so that none of its own is replaced by the build machine's.
LINKS=$(mktemp -d)
export LD_LIBRARY_PATH=$TORCH_LIB${CUDART_DIR:+:$CUDART_DIR}:$LINKS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for _ in 1 2 3 4 5 6; do
  missing=$(ldd "$B" "$K" | awk '/not found/ {print $1}' | sort -u)
  [ -n "$missing" ] || break
  for lib in $missing; do
    [ -e "$D/lib/$lib" ] || { echo "$lib: needed by the programs, not on this machine nor carried"; exit 1; }
    ln -sf "$D/lib/$lib" "$LINKS/$lib"
  done
done

stamp machine
GPU=0
"$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null && GPU=1
if ((GPU)); then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
else
  echo "no GPU (torch.cuda.is_available() is false): the CPU checks only"
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
  torch.backends.cudnn.version())' 2>/dev/null
"$PY" -c 'import torchvision; print("torchvision", torchvision.__version__)' 2>/dev/null ||
  echo "no torchvision for $PY"
echo "cores: $(nproc)"
"$B" --version
echo "libraries linked from .devdeps: $(ls "$LINKS" | tr '\n' ' ')"
ldd "$B" | grep -E 'libtorch_cpu|libc10_cuda|libcudart|libgomp'

# First the CUDA kernels (src/kernels/*.cu) against the CPU path and the double reference, every
# dtype, odd and realistic shapes; without a GPU every test is skipped, saying so.
stamp "CUDA kernels against the CPU path: densenet_cuda_tests"
timeout 300 "$K" --gtest_brief=1 >"$OUT/cuda-kernel-tests.txt" 2>&1
echo "exit $?"
grep -E '^\[  (PASSED|FAILED|SKIPPED) |FAILED TEST' "$OUT/cuda-kernel-tests.txt" | head -20
grep -m1 -o 'no CUDA device.*' "$OUT/cuda-kernel-tests.txt"

check() {  # gradcheck on the GPU; full output in $OUT, summary here
  local name=$1
  shift
  stamp "gradcheck $name"
  timeout 120 "$B" gradcheck --device cuda --no-finite-differences "$@" >"$OUT/gradcheck-$name.txt" 2>&1
  echo "exit $?"
  grep -E 'vs naive|FAIL' "$OUT/gradcheck-$name.txt" | head -20
}
compare() {  # same-run comparison with PyTorch; table here, rows in $OUT/gpu-rows.jsonl
  stamp "compare $*"
  timeout 200 python3 bench/compare_pytorch.py --densenet "$B" --device cuda \
    --json-out "$OUT/gpu-rows.jsonl" "$@" 2>&1 | tee -a "$OUT/compare.txt"
}
cpu_checks() {
  # The CPU kernels under LibTorch 2.x, whose wheel bundles its own libgomp beside the one
  # g++'s OpenMP would link: which runtimes are loaded, gradients, threads honoured.
  local threads=$(($(nproc) < 4 ? $(nproc) : 4))
  stamp "cpu under LibTorch 2.x: gradcheck"
  timeout 300 "$B" gradcheck --arch densenet-bc-100 --block-config 4,4,4 --batch 4 \
    --no-finite-differences >"$OUT/gradcheck-cpu.txt" 2>&1
  echo "exit $?"
  grep -E 'vs naive|FAIL' "$OUT/gradcheck-cpu.txt" | head -20
  stamp "cpu under LibTorch 2.x: bench, $threads threads"
  timeout 300 "$B" bench --arch densenet-bc-100 --batch 64 --threads "$threads" --warmup 1 --iters 2
  echo "exit $?"
}

# Data-parallel training through c10d's ProcessGroupNCCL: one rank on GPU 0 (NCCL refuses two
# ranks on one device), sync-bn so that forward and backward all-reduce CUDA tensors too, the
# gradient buckets on NCCL's stream, the replica check at the checkpoint.
nccl_check() {
  stamp "train --gpus 0 --dist-backend nccl (world size 1)"
  local run
  run=$(mktemp -d)/train-nccl
  timeout 300 "$B" train --gpus 0 --dist-backend nccl --sync-bn --dist-timeout 120 \
    --dataset synthetic --input-size 32 --arch densenet-bc-100 --max-train-samples 1024 \
    --max-eval-samples 256 --batch-size 64 --epochs 1 --output-dir "$run" \
    >"$OUT/train-nccl.txt" 2>&1
  echo "exit $?"
  grep -E 'data-parallel|epoch [0-9]+/|error' "$OUT/train-nccl.txt" | head -12
}
# Without a GPU the CUDA build's NCCL path still refuses --gpus in one line (exit 2).
nccl_refusal() {
  stamp "train --gpus 0 without a GPU (refused)"
  "$B" train --gpus 0 --dataset synthetic --output-dir "$(mktemp -d)/refused" 2>&1
  echo "exit $? (2 expected)"
}

if ((!GPU)); then
  cpu_checks
  nccl_refusal
  stamp "cpu under LibTorch 2.x: bench under bf16 autocast"
  timeout 300 "$B" bench --arch densenet-bc-100 --block-config 4,4,4 --batch 16 --amp bf16 \
    --warmup 1 --iters 1
  echo "exit $?"
  echo "skipped (no GPU): gradcheck --device cuda (densenet-bc-100, densenet-40 with dropout," \
    "densenet121), bench --device cuda, compare_pytorch.py --device cuda (all tables)," \
    "the profile, the amp comparisons, the fp16 training run and the NCCL training run"
  stamp done
  exit 0
fi

check bc100 --arch densenet-bc-100
check d40-dropout --arch densenet-40 --block-config 4,4,4 --drop-rate 0.2
nccl_check
if [ "$MODE" = verify ]; then
  "$B" bench --arch densenet-bc-100 --device cuda --batch 64 --warmup 3 --iters 10
  cpu_checks
  stamp done
  exit 0
fi
amp_checks() {
  for amp in none bf16 fp16; do
    compare --arch densenet121 --batch 64 --warmup 3 --iters 10 --impls torchvision,torchvision-me \
      --amp $amp
  done
  stamp "train fp16 on cuda (loss scaler)"
  timeout 200 "$B" train --device cuda --dataset synthetic --input-size 32 --arch densenet-bc-100 \
    --max-train-samples 2048 --max-eval-samples 256 --batch-size 128 --epochs 2 --amp fp16 \
    --output-dir "$OUT/train-fp16" --force >"$OUT/train-fp16.txt" 2>&1
  echo "exit $?"
  grep -E 'amp:|epoch [0-9]+/|error' "$OUT/train-fp16.txt" | head -12
}
if [ "$MODE" = amp ]; then
  amp_checks
  stamp done
  exit 0
fi
compare --arch densenet-bc-100 --batch 64,256 --warmup 3 --iters 20 \
  --impls pytorch-plain,torchvision,torchvision-me
compare --arch densenet121 --batch 64 --warmup 3 --iters 10 --impls torchvision,torchvision-me
compare --arch densenet-40 --batch 64 --warmup 3 --iters 20 --impls pytorch-plain,pytorch-checkpoint
check d121 --arch densenet121 --input-size 64 --dtype float32 --batch 2
if [ "$MODE" = full ]; then
  compare --arch densenet121 --batch 64 --warmup 3 --iters 10 --impls torchvision --cudnn-benchmark
  "$B" bench --arch densenet-bc-100 --device cuda --batch 64 --memory efficient --warmup 3 \
    --iters 5 --profile >"$OUT/profile-bc100.txt" 2>&1
  head -30 "$OUT/profile-bc100.txt"
  amp_checks
fi
stamp done

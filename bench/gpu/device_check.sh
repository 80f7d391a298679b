#!/bin/bash
# One call on a lent GPU machine (see docs/BENCHMARKS.md, "GPU"): builds the CLI against that
# machine's pip LibTorch (CUDA), checks the CUDA code paths against the naive mode, then measures
# our three modes and PyTorch's DenseNets in the same run. Logs and JSON rows go to $OUT.
#   here:  bash bench/gpu/make_devdeps.sh        (then carry .devdeps with the call)
#   there: bash bench/gpu/device_check.sh [short|verify|amp]
#          (short: without the autotuned and profile runs; verify: build and gradchecks only;
#          amp: mixed precision only, against torchvision densenet121 with the same autocast,
#          and a short fp16 training run with the loss scaler)
set -u -o pipefail
MODE=${1:-full}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
START=$(date +%s)
stamp() { echo "== [$(($(date +%s) - START))s] $*"; }

stamp machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision",
  torchvision.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
g++ --version | head -1
cmake --version | head -1
echo "cores: $(nproc)"
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
D=$PWD/.devdeps
[ -d "$D" ] || { echo "no .devdeps: run bench/gpu/make_devdeps.sh and carry .devdeps"; exit 1; }

stamp configure
# DENSENET_TENSORBOARD=OFF: the GPU image has none of the -dev packages (make_devdeps.sh), protobuf
# included, so no TensorBoard event files there.
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DDENSENET_BUILD_TESTS=OFF \
  -DDENSENET_TENSORBOARD=OFF \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$D" \
  -DJPEG_INCLUDE_DIR="$D/include" -DJPEG_LIBRARY="$D/lib/libjpeg.a" \
  -DPNG_PNG_INCLUDE_DIR="$D/include" -DPNG_LIBRARY="$D/lib/libpng16.a" \
  -DZLIB_INCLUDE_DIR="$D/include" -DZLIB_LIBRARY="$D/lib/libz.a" \
  -DTORCH_CUDA_ARCH_LIST=9.0 >"$OUT/configure.log" 2>&1 ||
  { tail -60 "$OUT/configure.log"; exit 1; }
stamp build
ninja -C build-cuda -k 0 densenet_cli >"$OUT/build.log" 2>&1
rc=$?
echo "warnings: $(grep -c 'warning:' "$OUT/build.log")"
grep -A3 'warning:' "$OUT/build.log" | head -30
if [ $rc -ne 0 ]; then
  grep -B1 -A5 'error' "$OUT/build.log" | head -150
  exit 1
fi
B=$PWD/build-cuda/densenet

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

check bc100 --arch densenet-bc-100
check d40-dropout --arch densenet-40 --block-config 4,4,4 --drop-rate 0.2
if [ "$MODE" = verify ]; then
  "$B" bench --arch densenet-bc-100 --device cuda --batch 64 --warmup 3 --iters 10
  # The CPU kernels under LibTorch 2.x, whose wheel bundles its own libgomp beside the one
  # this build's OpenMP flags link: which runtimes are loaded, gradients, threads honoured.
  stamp "cpu under LibTorch 2.x"
  ldd "$B" | grep -i gomp
  timeout 200 "$B" gradcheck --arch densenet-bc-100 --block-config 4,4,4 --batch 4 \
    --no-finite-differences >"$OUT/gradcheck-cpu.txt" 2>&1
  echo "exit $?"
  grep -E 'vs naive|FAIL' "$OUT/gradcheck-cpu.txt" | head -20
  timeout 200 "$B" bench --arch densenet-bc-100 --batch 64 --threads 4 --warmup 1 --iters 2
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

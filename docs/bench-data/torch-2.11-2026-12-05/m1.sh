#!/bin/bash
# issue 24 measurements, quiet machine, in this order
cd /work/main
P=$HOME/.cache/densenet/torch-2.11.0/bin/python
D=docs/bench-data/torch-2.11-2026-12-05; mkdir -p $D
C="$P bench/compare_pytorch.py --densenet build/densenet --threads 2 --timeout 1500 --json-out $D/compare.jsonl"
t() { echo "=== $(date -u +%H:%M:%S) $*"; }
t d40-f32; $C --arch densenet-40 --batch 64 --iters 3 --memory efficient,minimal,naive --impls pytorch-plain,pytorch-checkpoint --formats nchw,channels_last | tee $D/2-d40-b64.txt
t bc100-bf16; $C --arch densenet-bc-100 --batch 64 --iters 3 --memory naive,efficient,minimal --impls pytorch-plain,torchvision,torchvision-me --formats nchw,channels_last --amp bf16 | tee $D/4-amp-bf16.txt
t d40-bf16; $C --arch densenet-40 --batch 64 --iters 3 --memory efficient,naive --impls pytorch-plain --formats nchw,channels_last --amp bf16 | tee $D/2-d40-b64-bf16.txt
t profile-f32; build/densenet bench --arch densenet-bc-100 --batch 64 --threads 2 --memory efficient --warmup 1 --iters 3 --profile | tee $D/profile-bc100-f32.txt
t profile-bf16; build/densenet bench --arch densenet-bc-100 --batch 64 --threads 2 --memory efficient --warmup 1 --iters 3 --amp bf16 --profile | tee $D/profile-bc100-bf16.txt
t compile; $C --arch densenet-bc-100 --batch 64 --iters 3 --memory efficient --impls torchvision-compile --formats nchw,channels_last | tee $D/1-bc100-compile.txt
t compile-bf16; $C --arch densenet-bc-100 --batch 64 --iters 3 --memory efficient --impls torchvision-compile --formats channels_last --amp bf16 | tee $D/4-bc100-compile-bf16.txt
t done

#!/bin/bash
cd /work/main
P=$HOME/.cache/densenet/torch-2.11.0/bin/python
D=docs/bench-data/torch-2.11-2026-12-05
C="$P bench/compare_pytorch.py --densenet /tmp/lead/densenet-train --threads 2 --timeout 1500 --json-out $D/compare.jsonl"
t() { echo "=== $(date -u +%H:%M:%S) $*"; }
t bc100-bf16-after; $C --arch densenet-bc-100 --batch 64 --iters 3 --memory efficient,minimal --impls torchvision --formats nchw,channels_last --amp bf16 | tee $D/4-amp-bf16-after.txt
t d40-bf16-after; $C --arch densenet-40 --batch 64 --iters 3 --memory efficient,minimal --impls pytorch-plain --formats nchw,channels_last --amp bf16 | tee $D/2-d40-b64-bf16-after.txt
t done

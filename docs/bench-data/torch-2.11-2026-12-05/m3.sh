#!/bin/bash
# issue 24 item 2: the ratios not yet re-measured against PyTorch 2.11, quiet machine, in this order
cd /work/main
P=$HOME/.cache/densenet/torch-2.11.0/bin/python
B=${B:-/tmp/lead/densenet-train}
D=docs/bench-data/torch-2.11-2026-12-05; mkdir -p $D
C="$P bench/compare_pytorch.py --densenet $B --threads 2 --timeout 1500 --json-out $D/compare.jsonl"
t() { echo "=== $(date -u +%H:%M:%S) $*"; }
t bc100-f32-rest; $C --arch densenet-bc-100 --batch 64 --iters 3 --memory efficient,minimal \
  --impls pytorch-plain,pytorch-checkpoint,torchvision,torchvision-me --formats nchw,channels_last | tee $D/1-bc100-b64-rest.txt
t bc40-fashion; $C --arch densenet-bc-40 --in-channels 1 --input-size 28 --num-classes 10 --batch 64 --warmup 2 --iters 10 \
  --memory naive,efficient --formats nchw,channels_last | tee $D/5-channels-last.txt
t d121; $C --arch densenet121 --batch 16 --iters 2 --memory efficient,minimal --impls torchvision,timm \
  --formats nchw,channels_last | tee $D/6-d121.txt
t L250; $C --arch densenet-bc-100 --block-config 41,41,41 --batch 64 --iters 1 --memory efficient,minimal \
  --impls pytorch-plain,torchvision-me --formats nchw,channels_last | tee $D/3-L250.txt
t loader; $P bench/loader_compare.py --densenet $B imagenet --images 512 --epochs 2 --rounds 3 | tee $D/9-loader.txt
t dp; common="--max-train-samples 12800 --max-eval-samples 1000 --epochs 1 --force"
$B train $common --threads 2 --output-dir /tmp/lead/8-ours-1x2 2>&1 | tail -3 | tee $D/8-ours-1x2.txt
$B train $common --nproc-per-node 2 --threads 1 --output-dir /tmp/lead/8-ours-2x1 2>&1 | tail -3 | tee $D/8-ours-2x1.txt
$P bench/train_pytorch.py --threads 2 --workers 1 --epochs 1 --max-train-samples 12800 --max-eval-samples 1000 \
   --json $D/8-pytorch-1x2.json 2>&1 | tail -3
$P bench/train_pytorch.py --nproc 2 --threads 1 --workers 1 --epochs 1 --max-train-samples 12800 \
   --max-eval-samples 1000 --json $D/8-pytorch-2x1.json 2>&1 | tail -3
t done

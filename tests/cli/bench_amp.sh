#!/bin/bash
# usage: bench_amp.sh DENSENET PYTHON
# `densenet bench --amp bf16` runs the step under autocast: in the naive mode the saved
# convolution outputs are bfloat16, and the efficient and minimal stages keep their buffers in
# bfloat16 on the CPU, so in every mode the step's tracked peak (allocator bytes, not a timing)
# falls to about half of float32's (measured 0.52-0.57: parameters, their gradients and the
# input stay float32). The JSON rows name the amp mode.
set -u
densenet=$1
python=$2
rows=$(for amp in none bf16; do
  "$densenet" bench --arch densenet-bc-40 --block-config 3,3 --input-size 16 --batch 8 \
    --memory naive,efficient,minimal --threads 1 --warmup 1 --iters 1 --json --amp "$amp" 2>/dev/null ||
    { echo "FAIL: bench --amp $amp exited $?" >&2; exit 1; }
done) || exit 1
printf '%s\n' "$rows" | "$python" -c '
import json, sys
peak = {(r["amp"], r["memory"]): r["peak_bytes"] for r in map(json.loads, sys.stdin)}
print(peak)
ratio = {m: peak[("bf16", m)] / peak[("none", m)] for m in ("naive", "efficient", "minimal")}
print("bf16 / float32 peak:", ratio)
sys.exit(0 if all(0.45 < r < 0.62 for r in ratio.values()) else 1)
' || { echo "FAIL: bf16 peaks are not those of autocast"; exit 1; }
echo "ok"

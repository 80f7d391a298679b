#!/bin/bash
# usage: bench_amp.sh DENSENET PYTHON
# `densenet bench --amp bf16` runs the step under autocast: in the naive mode the saved
# convolution outputs are bfloat16, so the step's tracked peak (allocator bytes, not a timing)
# falls to about half of float32's; the efficient mode's stages compute in float32, so its peak
# stays within a few percent. The JSON rows name the amp mode.
set -u
densenet=$1
python=$2
rows=$(for amp in none bf16; do
  "$densenet" bench --arch densenet-bc-40 --block-config 3,3 --input-size 16 --batch 8 \
    --memory naive,efficient --threads 1 --warmup 1 --iters 1 --json --amp "$amp" 2>/dev/null ||
    { echo "FAIL: bench --amp $amp exited $?" >&2; exit 1; }
done) || exit 1
printf '%s\n' "$rows" | "$python" -c '
import json, sys
peak = {(r["amp"], r["memory"]): r["peak_bytes"] for r in map(json.loads, sys.stdin)}
print(peak)
naive = peak[("bf16", "naive")] / peak[("none", "naive")]
efficient = peak[("bf16", "efficient")] / peak[("none", "efficient")]
print("bf16 / float32 peak: naive %.3f, efficient %.3f" % (naive, efficient))
sys.exit(0 if naive < 0.6 and 0.95 < efficient < 1.05 else 1)
' || { echo "FAIL: bf16 peaks are not those of autocast"; exit 1; }
echo "ok"

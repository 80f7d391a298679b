#!/bin/bash
# usage: info_amp.sh DENSENET PYTHON
# Under `--amp bf16` the memory plan counts 16-bit activations on the CPU in every mode (naive:
# autocast's convolution outputs; efficient and minimal: their stages' buffers): `densenet info
# --amp bf16 --json` gives exactly half of float32's kept and peak bytes per mode, and bench's
# refusal of a batch that cannot fit plans under 0.6 of float32's bytes per sample (the input
# image stays float32).
set -u
densenet=$1
python=$2
plans=$(for amp in none bf16; do
  "$densenet" info --arch densenet-bc-100 --json --amp "$amp" ||
    { echo "FAIL: info --amp $amp exited $?" >&2; exit 1; }
done) || exit 1
printf '%s\n' "$plans" | "$python" -c '
import json, sys
f32, bf16 = (json.loads(line) for line in sys.stdin)
assert bf16["training_memory_amp"] == "bf16", bf16["training_memory_amp"]
for mode in ("naive", "efficient", "minimal"):
    a, b = f32["training_memory_per_sample"][mode], bf16["training_memory_per_sample"][mode]
    print(mode, a, b)
    assert 2 * b["peak_bytes"] == a["peak_bytes"] and 2 * b["kept_bytes"] == a["kept_bytes"], mode
' || { echo "FAIL: info --amp bf16 does not plan 16-bit activations"; exit 1; }
per_sample() {  # the refusal's "memory plan: X MiB per sample"
  "$densenet" bench --arch densenet-bc-100 --memory efficient --batch 100000000 --amp "$1" 2>&1 |
    sed -n 's/.*memory plan: \([0-9.]*\) MiB per sample.*/\1/p'
}
f32=$(per_sample none)
bf16=$(per_sample bf16)
"$python" -c "import sys; f, b = float('$f32' or 0), float('$bf16' or 0); print(f, b); sys.exit(0 if f > 0 and 0 < b < 0.6 * f else 1)" ||
  { echo "FAIL: bench's refusal under --amp bf16 plans $bf16 MiB per sample (float32: $f32)"; exit 1; }
# The text plan names a bench command that runs here: `--device cuda` added exactly where this
# LibTorch's CPU autocast refuses fp16 (LibTorch 1.13), with a line that says so.
text=$("$densenet" info --arch densenet-bc-40 --amp fp16) || { echo "FAIL: info --amp fp16 exited $?"; exit 1; }
"$densenet" bench --arch densenet-bc-40 --block-config 2,2 --batch 2 --warmup 0 --iters 1 --amp fp16 >/dev/null 2>&1
bench_status=$?
if [ "$bench_status" = 2 ]; then
  grep -q 'densenet bench --amp fp16 --device cuda' <<<"$text" &&
    grep -q "CPU autocast has no fp16" <<<"$text" ||
    { echo "FAIL: bench refuses fp16 on the CPU but info offers it there: $text"; exit 1; }
else
  [ "$bench_status" = 0 ] && ! grep -q -- '--device cuda' <<<"$text" ||
    { echo "FAIL: bench --amp fp16 exited $bench_status; info says: $text"; exit 1; }
fi
echo "ok"

#!/bin/bash
# usage: bench_limits.sh DENSENET
# Issue 21: what `densenet bench` cannot measure is said, not measured silently.
#   - --max-batch where no mode trains even the smallest batch within --memory-cap: a usage
#     error (exit 2) after the rows, which say "none", never "0 in ..." with exit 0;
#   - --max-batch on a model whose last block is 1x1 searches from batch 2 (a batch norm in
#     training needs more than one value per channel), not PyTorch's error at batch 1.
set -u
densenet=$1
fail() { echo "FAIL: $*"; exit 1; }

# 1.5 MiB holds densenet-bc-40's parameters and gradients (1.4 MiB) but not a step at batch 1.
stdout=$("$densenet" bench --arch densenet-bc-40 --memory minimal --batch 1 --warmup 0 --iters 1 \
  --threads 1 --max-batch --memory-cap 1.5MiB 2>"${TMPDIR:-/tmp}/bench_limits.$$")
status=$?
stderr=$(cat "${TMPDIR:-/tmp}/bench_limits.$$")
rm -f "${TMPDIR:-/tmp}/bench_limits.$$"
[ "$status" -eq 2 ] || fail "nothing fits: exit $status, not 2: $stdout $stderr"
printf '%s\n' "$stdout" | grep -Eq '^minimal +1 .*   none in 1\.50 MiB$' || fail "row: $stdout"
printf '%s\n' "$stderr" | tail -n 1 | grep -Eq \
  '^densenet bench: error: --memory-cap 1\.5MiB: no mode trains densenet-bc-40 within it, not even at batch 1; give a larger --memory-cap' ||
  fail "error line: $stderr"
echo "ok: $(printf '%s\n' "$stderr" | tail -n 1)"

stdout=$("$densenet" bench --block-config 1 --input-size 1 --memory naive --batch 2 --warmup 0 \
  --iters 1 --threads 1 --max-batch --memory-cap 4MiB 2>&1) || fail "1x1 max-batch: $stdout"
printf '%s\n' "$stdout" | grep -Eq '^naive +2 .*   [0-9]+ in 4\.00 MiB$' || fail "1x1 row: $stdout"
echo "ok"

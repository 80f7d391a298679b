#!/bin/bash
# usage: predict_checkpoint.sh DENSENET IMAGE
# Issue 21 items 7 and 17. A training checkpoint carries its architecture, classes and input
# transform: `predict` without --arch gives what the same model spelled out in flags gives, and
# refuses an --arch that contradicts it. Plain weights of a run trained with --block-config
# 2,2,2 --growth-rate 6, loaded as densenet-bc-100 by predict and eval, give a short error that
# names those two flags (it used to list 45 keys and end with "add --num-init-features 12").
set -u
densenet=$1
image=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# expect STATUS REGEX COMMAND...: COMMAND exits with STATUS, its stderr matches REGEX and is one
# line plus at most 4 indented ones.
expect() {
  local status=$1 regex=$2
  shift 2
  local stderr
  stderr=$("$@" 2>&1 >/dev/null)
  local got=$?
  [ "$got" -eq "$status" ] || fail "'$*' exited with $got, not $status: $stderr"
  printf '%s\n' "$stderr" | head -n 1 | grep -Eq -- "$regex" || fail "stderr of '$*': $stderr"
  [ "$(printf '%s\n' "$stderr" | grep -c '^[^ ]')" -eq 1 ] || fail "not one error line: $stderr"
  [ "$(printf '%s\n' "$stderr" | wc -l)" -le 5 ] || fail "more than 4 detail lines: $stderr"
  echo "ok: $stderr"
}

arch=(--arch densenet-bc-100 --block-config 2,2,2 --growth-rate 6)
"$densenet" train --dataset synthetic --input-size 16 "${arch[@]}" --epochs 1 \
  --max-train-samples 32 --max-eval-samples 16 --batch-size 16 --threads 1 --workers 0 \
  --output-dir "$dir/run" > /dev/null 2> "$dir/stderr" || fail "train: $(cat "$dir/stderr")"
"$densenet" convert --checkpoint "$dir/run/best.pth" --output "$dir/plain.pth" \
  --state-dict-only > /dev/null || fail "convert --state-dict-only"

# The checkpoint alone equals its architecture, input size, normalisation (synthetic: 0.5/0.25)
# and class names given by hand.
from_checkpoint=$("$densenet" predict --weights "$dir/run/best.pth" --json --logits "$image") ||
  fail "predict from the training checkpoint failed"
by_hand=$("$densenet" predict "${arch[@]}" --input-size 16 --weights "$dir/plain.pth" \
  --resize 16 --crop 16 --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25 --labels "$dir/run/classes.txt" \
  --json --logits "$image") || fail "predict with the flags failed"
[ "$from_checkpoint" = "$by_hand" ] || fail "checkpoint: $from_checkpoint; flags: $by_hand"
printf '%s\n' "$from_checkpoint" | grep -q '"label":' || fail "no class names: $from_checkpoint"
# The same architecture in other words is accepted; another one is refused as a usage error.
"$densenet" predict --weights "$dir/run/best.pth" --growth-rate 6 --arch densenet-bc-100 \
  "$image" > /dev/null || fail "the checkpoint's own --growth-rate was refused"
expect 2 "is a training checkpoint of densenet-bc-100, not arch densenet121: its architecture comes from it; drop --arch" \
  "$densenet" predict --weights "$dir/run/best.pth" --arch densenet121 "$image"
expect 2 "is a training checkpoint of densenet-bc-100 \(block-config 2,2,2\), not block-config 2,2: " \
  "$densenet" predict --weights "$dir/run/best.pth" --block-config 2,2 "$image"
expect 2 "--arch is required: '.*plain.pth' holds plain weights" \
  "$densenet" predict --weights "$dir/plain.pth" "$image"

# The issue's case, through predict and eval: what the weights are, and the two flags.
fit="holds densenet-bc-100 with --growth-rate 6 --block-config 2,2,2, not densenet-bc-100: use --growth-rate 6 --block-config 2,2,2$"
expect 1 "'$dir/plain.pth' $fit" \
  "$densenet" predict --arch densenet-bc-100 --weights "$dir/plain.pth" "$image"
expect 1 "'$dir/plain.pth' $fit" \
  "$densenet" eval --arch densenet-bc-100 --weights "$dir/plain.pth" --dataset synthetic \
  --input-size 16 --max-eval-samples 16 --threads 1 --workers 0
echo ok

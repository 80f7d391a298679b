#!/bin/bash
# usage: class_mapping_cli.sh CASE DENSENET PYTHON WORKDIR
# Issue 21: image folders whose splits have different classes. The val split's labels index the
# training classes by name (torchvision's two ImageFolders would number val/{b} as class 0, a),
# `eval` looks a folder's classes up in the checkpoint's list, and a class that the training
# split or the checkpoint lacks is an error naming it.
#   subset:  train/{a,b} + val/{b}: the data line says "1 of 2 classes", one warning names a,
#            and a model that separates a trivially separable set scores val/b as b (top-1
#            >= 90%; labelled as a it would be ~0%); `eval` of its checkpoint on a folder with
#            val/{b} does the same (and warns on stderr, as train), plain weights use the
#            folder's own classes.
#   unknown: val/{a,c} is refused naming c (train and eval), exit 1 like other data errors.
set -u
case_name=$1
densenet=$2
python=$3
work=$4/$case_name
source "$(dirname "$0")/../support/cli_case.sh"

# folder ROOT SPLIT CLASS COUNT: COUNT 16x16 PNGs, dark for a, bright for b, mid-grey for c,
# with noise: a step of a tiny DenseNet separates a from b at once.
folder() {
  "$python" - "$@" <<'EOF' || fail "python could not write images"
import os, sys
import numpy as np
from PIL import Image
root, split, cls, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
level = {"a": 40, "b": 215, "c": 128}[cls]
rng = np.random.default_rng(sum(map(ord, split + cls)))
os.makedirs(f"{root}/{split}/{cls}", exist_ok=True)
for i in range(count):
    pixels = np.clip(level + rng.normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(f"{root}/{split}/{cls}/{i:03d}.png")
EOF
}

tiny=(--dataset imagefolder --input-size 16 --batch-size 8 --test-batch-size 8 "${tiny_model[@]}")

# top1 TEXT: the top-1 percentage of an `eval` result line.
top1() { printf '%s\n' "$1" | sed -n 's/.*top-1 \([0-9.]*\)%.*/\1/p' | tail -n 1; }
at_least_90() { awk -v x="$1" 'BEGIN { exit !(x != "" && x >= 90) }'; }

case $case_name in
  subset)
    folder "$work/data" train a 24
    folder "$work/data" train b 24
    folder "$work/data" val b 8
    out=$("$densenet" train "${tiny[@]}" --data "$work/data" --epochs 4 --lr 0.05 \
      --output-dir "$work/run" 2>"$work/stderr") || fail "train: $(cat "$work/stderr")"
    printf '%s\n' "$out"
    printf '%s\n' "$out" | grep -Eq '^data: imagefolder train \(48 images, 2 classes, ' ||
      fail "the data line does not give the training classes"
    printf '%s\n' "$out" | grep -Eq '^      test: imagefolder test \(8 images, 1 of 2 classes, ' ||
      fail "the data line does not say that the test split has 1 of the 2 classes"
    # Warnings go to stderr (stdout is often a log nobody reads until the run ends).
    warning='warning: the test split has no images of class a (it has 1 of the 2 training classes)'
    grep -Fxq "$warning" "$work/stderr" || fail "no warning on stderr naming the missing class a"
    printf '%s\n' "$out" | grep -q "^warning:" && fail "a warning on stdout: $out"
    best=$(printf '%s\n' "$out" | sed -n 's/^done: best test top-1 \([0-9.]*\)%.*/\1/p')
    at_least_90 "$best" || fail "val/b scored top-1 '$best'%: its images are not labelled b"
    [ "$(cat "$work/run/classes.txt")" = $'a\nb' ] || fail "classes.txt: $(cat "$work/run/classes.txt")"
    # eval: the checkpoint's classes, the folder's looked up in them.
    result=$("$densenet" eval --weights "$work/run/best.pth" --dataset imagefolder \
      --data "$work/data" --threads 1 --workers 0 2>"$work/stderr") ||
      fail "eval: $result $(cat "$work/stderr")"
    echo "$result"
    # The checkpoint's class a has no folder here: eval warns as train does.
    grep -Fxq "$warning" "$work/stderr" || fail "eval: no warning naming class a: $(cat "$work/stderr")"
    at_least_90 "$(top1 "$result")" || fail "eval scored val/b as another class: $result"
    # Plain weights (no class list): the folder's own classes, as before.
    "$python" -c "import torch,sys; torch.save(torch.load(sys.argv[1], weights_only=True)['model'], sys.argv[2])" \
      "$work/run/best.pth" "$work/plain.pth" || fail "python could not write plain weights"
    mkdir -p "$work/both"
    cp -r "$work/data/train" "$work/both/"
    folder "$work/both" val a 8
    folder "$work/both" val b 8
    result=$("$densenet" eval --weights "$work/plain.pth" --arch densenet-bc-40 --block-config 2,2 \
      --growth-rate 4 --dataset imagefolder --data "$work/both" --input-size 16 --threads 1 \
      --workers 0 2>&1) || fail "eval of plain weights: $result"
    echo "$result"
    at_least_90 "$(top1 "$result")" || fail "plain weights on val/{a,b}: $result" ;;
  unknown)
    folder "$work/data" train a 8
    folder "$work/data" train b 8
    folder "$work/data" val a 4
    folder "$work/data" val c 4
    expect_failure 1 "imagefolder: class folder 'c' of '$work/data/val' is not one of the 2 classes of the training split \(a, b\)" \
      "$densenet" train "${tiny[@]}" --data "$work/data" --epochs 1 --output-dir "$work/run"
    [ ! -e "$work/run/last.pth" ] || fail "a checkpoint was written"
    # eval with a checkpoint whose classes are a, b on a folder with c.
    mkdir -p "$work/good"
    cp -r "$work/data/train" "$work/good/"
    folder "$work/good" val b 4
    "$densenet" train "${tiny[@]}" --data "$work/good" --epochs 1 --output-dir "$work/good_run" \
      >/dev/null 2>"$work/stderr" || fail "train: $(cat "$work/stderr")"
    expect_failure 1 "class folder 'c' of '$work/data/val' is not one of the 2 classes of checkpoint '$work/good_run/last.pth' \(a, b\)" \
      "$densenet" eval --weights "$work/good_run/last.pth" --dataset imagefolder --data "$work/data" \
      --threads 1 --workers 0 ;;
  *)
    fail "unknown case" ;;
esac
echo "PASS ($case_name)"

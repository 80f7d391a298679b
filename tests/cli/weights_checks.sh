#!/bin/bash
# usage: weights_checks.sh DENSENET PYTHON WORKDIR
# What a new user found loading weights (trial-weights):
#   - non-finite weights (a NaN running_var, an infinite conv0 weight) are refused by predict,
#     eval and train --pretrained up front, naming the first such tensor and how many values;
#     convert copies them with a warning;
#   - keys under a wrapper's prefix ('backbone.') get the same hint from train --pretrained as
#     from predict, also for a 2-block model (whose final norm is named otherwise);
#   - a --pretrained mismatch names no class count (the classifier is replaced anyway);
#   - a training checkpoint evaluated or predicted at another size than it was trained at gets
#     a note on stderr;
#   - a --labels file that starts with '{' is JSON: {"0": name} or {"0": [id, name]}, else an
#     error.
set -u
case_name=weights_checks
densenet=$1
python=$2
work=$3/$case_name
source "$(dirname "$0")/../support/cli_case.sh"

tiny=(--input-size 16 "${tiny_model[@]}")
arch=(--arch densenet-bc-40 --block-config 2,2 --growth-rate 4 --input-size 16)
"$densenet" train --dataset synthetic "${tiny[@]}" --epochs 1 --max-train-samples 32 \
  --max-eval-samples 16 --batch-size 16 --output-dir "$work/run" >/dev/null 2>"$work/stderr" ||
  fail "train: $(cat "$work/stderr")"
"$densenet" convert --checkpoint "$work/run/best.pth" --output "$work/plain.pth" \
  --state-dict-only >/dev/null || fail "convert --state-dict-only"
"$python" - "$work" <<'EOF' || fail "python could not write the weights and the image"
import sys
import numpy as np
import torch
from PIL import Image
work = sys.argv[1]
sd = torch.load(f"{work}/plain.pth")
def changed(key, edit):
    out = dict(sd)
    out[key] = out[key].clone()
    edit(out[key])
    return out
var = "features.denseblock1.denselayer1.norm1.running_var"
torch.save(changed(var, lambda t: t.__setitem__(1, float("nan"))), f"{work}/nanvar.pth")
torch.save(changed("features.conv0.weight", lambda t: t[0, 0, 0, :2].fill_(float("inf"))),
           f"{work}/infconv.pth")
torch.save({"backbone." + k: v for k, v in sd.items()}, f"{work}/backbone.pth")
Image.fromarray(np.full((20, 20, 3), 100, np.uint8)).save(f"{work}/image.png")
EOF
image=$work/image.png
short=(--epochs 1 --max-train-samples 16 --max-eval-samples 16 --batch-size 16)

# Non-finite weights.
nan="the weights in '$work/nanvar.pth' hold non-finite values: features.denseblock1.denselayer1.norm1.running_var has 1 non-finite value \(NaN or infinity\) of 8; "
expect_failure 1 "$nan" "$densenet" predict "${arch[@]}" --num-classes 10 --weights "$work/nanvar.pth" "$image"
expect_failure 1 "'$work/infconv.pth' hold non-finite values: features.conv0.weight has 2 non-finite values" \
  "$densenet" predict "${arch[@]}" --num-classes 10 --weights "$work/infconv.pth" "$image"
expect_failure 1 "$nan" "$densenet" eval "${arch[@]}" --dataset synthetic --weights "$work/nanvar.pth" \
  --max-eval-samples 16 --threads 1 --workers 0
expect_failure 1 "$nan" "$densenet" train --dataset synthetic "${tiny[@]}" "${short[@]}" \
  --pretrained "$work/nanvar.pth" --output-dir "$work/nan_run"
[ ! -e "$work/nan_run/last.pth" ] || fail "train --pretrained of NaN weights wrote a checkpoint"
"$densenet" convert --checkpoint "$work/nanvar.pth" --output "$work/converted.pth" \
  >/dev/null 2>"$work/stderr" || fail "convert refused NaN weights: $(cat "$work/stderr")"
grep -q "^warning: the weights in '$work/nanvar.pth' hold non-finite values: features.denseblock1" \
  "$work/stderr" || fail "convert did not warn: $(cat "$work/stderr")"

# A wrapper's prefix: one hint, whichever command loads the file.
prefix="the weights in '$work/backbone.pth' do not fit the model: every key in the weights starts with 'backbone.' \(e.g. 'backbone.features.conv0.weight'\), and without it all [0-9]+ keys match the model; strip that prefix from the keys$"
expect_failure 1 "$prefix" "$densenet" predict "${arch[@]}" --num-classes 10 --weights "$work/backbone.pth" "$image"
expect_failure 1 "$prefix" "$densenet" train --dataset synthetic "${tiny[@]}" "${short[@]}" \
  --pretrained "$work/backbone.pth" --output-dir "$work/prefix_run"

# Fine-tuning replaces the classifier: a mismatch names the architecture, no class count.
stderr=$("$densenet" train --dataset synthetic --arch densenet169 --input-size 16 --threads 1 \
  --workers 0 "${short[@]}" --pretrained "$work/plain.pth" --output-dir "$work/other" 2>&1 >/dev/null)
first=$(printf '%s\n' "$stderr" | head -n 1)
printf '%s\n' "$first" | grep -Eq "^densenet train: error: '$work/plain.pth' holds densenet169 with --stem cifar --growth-rate 4 --block-config 2,2, not densenet169 with --stem cifar: use --growth-rate 4 --block-config 2,2$" ||
  fail "densenet169 from plain.pth: $stderr"
printf '%s\n' "$stderr" | grep -q "num-classes" && fail "a class count is named: $stderr"

# Another size than the trained one: a note, and the result still comes.
"$densenet" eval --weights "$work/run/best.pth" --input-size 32 --max-eval-samples 16 \
  --threads 1 --workers 0 >/dev/null 2>"$work/stderr" || fail "eval at 32 px: $(cat "$work/stderr")"
grep -Fxq "note: evaluating at 32 px, but the model was trained at 16 px" "$work/stderr" ||
  fail "no note from eval --input-size 32: $(cat "$work/stderr")"
"$densenet" eval --weights "$work/run/best.pth" --max-eval-samples 16 --threads 1 --workers 0 \
  >/dev/null 2>"$work/stderr" || fail "eval: $(cat "$work/stderr")"
[ ! -s "$work/stderr" ] || fail "eval at the trained size wrote to stderr: $(cat "$work/stderr")"
for size in "--crop 30" "--input-size 32"; do
  # shellcheck disable=SC2086
  "$densenet" predict --weights "$work/run/best.pth" $size "$image" >/dev/null 2>"$work/stderr" ||
    fail "predict $size: $(cat "$work/stderr")"
  grep -Eq "^note: the images are cropped to (30|32) px, but the model was trained at 16 px$" \
    "$work/stderr" || fail "no note from predict $size: $(cat "$work/stderr")"
done

# --labels: JSON objects as imagenet_class_index.json writes them, or refused in one line.
"$python" -c "import json; print(json.dumps({str(i): ['n%d' % i, 'name %d' % i] for i in range(10)}))" \
  >"$work/index.json"
"$python" -c "import json; print(json.dumps({str(i): 'name %d' % i for i in range(10)}))" \
  >"$work/names.json"
for labels in index names; do
  out=$("$densenet" predict --weights "$work/run/best.pth" --labels "$work/$labels.json" --json \
    "$image") || fail "predict --labels $labels.json"
  printf '%s\n' "$out" | grep -Eq '"label":"name [0-9]"' || fail "$labels.json: $out"
done
printf '{"a": 1}\n' >"$work/object.json"
expect_failure 1 "labels file '$work/object.json': a JSON labels file must be a list of strings or an object \{\"0\": name or \[id, name\], ...\}; key 'a' is not a class index" \
  "$densenet" predict --weights "$work/run/best.pth" --labels "$work/object.json" "$image"
echo "PASS ($case_name)"

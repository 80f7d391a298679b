#!/bin/sh
# usage: predict_labels.sh DENSENET WEIGHTS IMAGE_DIR
# --labels reads text lines and JSON lists alike; a directory or a missing file is reported with
# its reason, in one line, exit status 1.
densenet=$1
weights=$2
image="$3/rgb.png"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"${PYTHON:-python3}" -c "import json; print(json.dumps(['class %d' % i for i in range(1000)]))" > "$dir/labels.json"
seq 0 999 | sed 's/^/class /' > "$dir/labels.txt"
predict() { "$densenet" predict --arch densenet121 --weights "$weights" --topk 1 "$@" "$image"; }
json=$(predict --labels "$dir/labels.json" --json) || fail "predict with JSON labels failed"
text=$(predict --labels "$dir/labels.txt" --json) || fail "predict with text labels failed"
[ "$json" = "$text" ] || fail "JSON and text labels differ: $json / $text"
printf '%s\n' "$json" | grep -Eq '"label":"class [0-9]+"' || fail "no label in: $json"
message=$(predict --labels "$dir" 2>&1 >/dev/null)
[ $? -eq 1 ] || fail "a directory as labels did not exit with 1"
printf '%s\n' "$message" | grep -q "cannot read '$dir': it is a directory" || fail "message: $message"
message=$(predict --labels "$dir/missing.txt" 2>&1 >/dev/null)
printf '%s\n' "$message" | grep -q "cannot read '$dir/missing.txt': No such file or directory" \
  || fail "message: $message"
echo ok

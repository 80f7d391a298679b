#!/bin/sh
# usage: inspect_empty_containers.sh DENSENET PYTHON
# `inspect --json` writes an empty dict as {} and an empty list as [], as json.dumps does.
densenet=$1
python=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$python" -c "import torch; torch.save({'w': torch.ones(1), 'optimizer': {}, 'history': []}, '$dir/c.pth')" \
  || { echo "FAIL: cannot write the checkpoint"; exit 1; }
out=$("$densenet" inspect --json "$dir/c.pth") || { echo "FAIL: inspect failed"; exit 1; }
expected='"values":[{"name":"optimizer","value":{}},{"name":"history","value":[]}]'
case "$out" in
  *"$expected"*) echo ok ;;
  *) echo "FAIL: expected $expected in: $out"; exit 1 ;;
esac

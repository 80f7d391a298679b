#!/usr/bin/env bash
# usage: tools_venv.sh
# Creates, once, the Python virtual environment of test tools from PyPI
# (scripts/tools-requirements.txt: TensorBoard) and prints its python's path. The venv lives
# outside the source tree, in $DENSENET_TOOLS_VENV (default ~/.cache/densenet/tools-venv);
# when it already holds exactly these requirements nothing runs and nothing is downloaded.
# Several tests (and several checkouts) may call this at once: a lock makes them take turns.
set -euo pipefail
requirements="$(cd "$(dirname "$0")" && pwd)/tools-requirements.txt"
venv=${DENSENET_TOOLS_VENV:-$HOME/.cache/densenet/tools-venv}
stamp="$venv/densenet-requirements.txt"  # written last: a venv without it is incomplete

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! cmp -s "$requirements" "$stamp"; then
  echo "tools_venv: creating $venv (pip install -r $requirements)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"

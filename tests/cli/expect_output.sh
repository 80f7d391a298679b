#!/bin/sh
# usage: expect_output.sh EXPECTED_REGEX COMMAND [ARGS...]
# Passes when COMMAND succeeds and its standard output matches EXPECTED_REGEX (grep -E).
expected=$1
shift
stdout=$("$@")
status=$?
if [ "$status" -ne 0 ]; then
  echo "FAIL: '$*' exited with status $status"; exit 1
fi
if ! printf '%s\n' "$stdout" | grep -Eq -- "$expected"; then
  echo "FAIL: output of '$*' does not match '$expected':"; echo "$stdout"; exit 1
fi
echo "ok"

#!/bin/sh
# usage: [EXPECTED_STATUS=N] expect_error.sh EXPECTED_REGEX COMMAND [ARGS...]
# Passes when COMMAND exits with a failure status (1 or 2: not killed by a signal, which would
# be a crash; exactly EXPECTED_STATUS when set) and its standard error matches EXPECTED_REGEX
# (grep -E). The error is one line: any further line must be an indented detail (the keys of a
# state dict that does not fit), never a stack or a second message; MULTILINE=1 lifts this for
# programs with their own conventions (argparse's usage line).
expected=$1
shift
stderr=$("$@" 2>&1 >/dev/null)
status=$?
if [ "$status" -eq 0 ]; then
  echo "FAIL: expected an error, but '$*' succeeded"; exit 1
fi
if [ "$status" -gt 2 ]; then
  echo "FAIL: '$*' exited with status $status (crash?); stderr:"; echo "$stderr"; exit 1
fi
if [ -n "$EXPECTED_STATUS" ] && [ "$status" -ne "$EXPECTED_STATUS" ]; then
  echo "FAIL: '$*' exited with status $status, not $EXPECTED_STATUS; stderr:"; echo "$stderr"; exit 1
fi
if ! printf '%s\n' "$stderr" | grep -Eq -- "$expected"; then
  echo "FAIL: stderr of '$*' does not match '$expected':"; echo "$stderr"; exit 1
fi
if [ "$MULTILINE" != 1 ] && [ "$(printf '%s\n' "$stderr" | grep -c '^[^ ]')" -ne 1 ]; then
  echo "FAIL: stderr of '$*' is not one error line (with indented details):"; echo "$stderr"; exit 1
fi
echo "ok: $stderr"

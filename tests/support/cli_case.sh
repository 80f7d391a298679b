# Sourced by the CLI test scripts (tests/*/*_cli.sh, tests/distributed/two_machines.sh) after
# they set `case_name` and `work`: the case's own empty directory, `fail`, the one-line-error
# check, and the tiny DenseNet the runs train (a few seconds on one thread).
rm -rf "$work"
mkdir -p "$work"

fail() { echo "FAIL ($case_name): $*"; exit 1; }

# expect_failure STATUS REGEX COMMAND...: COMMAND must fail with exit status STATUS ("1-2": 1 or
# 2, never a signal or a crash) and write one error line matching REGEX to its standard error;
# further lines only as indented details (a state dict's keys, the fields that differ).
expect_failure() {
  local want=$1 regex=$2
  shift 2
  local stderr status
  stderr=$("$@" 2>&1 >/dev/null)
  status=$?
  [ "$status" -ne 0 ] || fail "'$*' succeeded"
  if [ "$want" = "1-2" ]; then
    [ "$status" -le 2 ] || fail "'$*' exited with status $status (crash?): $stderr"
  else
    [ "$status" -eq "$want" ] || fail "'$*' exited with status $status, not $want: $stderr"
  fi
  printf '%s\n' "$stderr" | grep -Eq -- "$regex" || fail "stderr does not match '$regex': $stderr"
  [ "$(printf '%s\n' "$stderr" | grep -c '^[^ ]')" -eq 1 ] || fail "stderr is not one error line: $stderr"
  echo "ok: $stderr"
}

tiny_model=(--arch densenet-bc-40 --block-config 2,2 --growth-rate 4 --threads 1 --workers 0)

#!/bin/sh
# usage: output_safety.sh DENSENET PYTHON
# `convert --output` against what the output path already is (issue 12, fault 1): a symlink is
# followed and its target written, a replaced file keeps its mode, a character device and a
# FIFO are written in place, a directory is refused with one line, nothing is left behind.
# Replacing an existing file takes --force (issue 21 item 8; convert_overwrite.sh).
densenet=$1
python=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$python" -c "import torch; torch.save({'w': torch.arange(6.).reshape(2, 3)}, '$dir/in.pth')" \
  || fail "cannot write the input checkpoint"
convert() { "$densenet" convert --checkpoint "$dir/in.pth" --output "$@"; }

# A symlink: the link stays a link, its target gets the checkpoint.
: > "$dir/target.pth"
ln -s target.pth "$dir/link.pth"
convert "$dir/link.pth" --force > /dev/null || fail "convert to a symlink failed"
[ -L "$dir/link.pth" ] || fail "the symlink was replaced by a regular file"
[ -s "$dir/target.pth" ] || fail "the symlink's target was not written"

# A dangling symlink: its target is created.
ln -s created.pth "$dir/dangling.pth"
convert "$dir/dangling.pth" > /dev/null || fail "convert to a dangling symlink failed"
[ -L "$dir/dangling.pth" ] && [ -s "$dir/created.pth" ] || fail "dangling symlink not followed"

# The mode of a replaced file is kept.
: > "$dir/private.pth"
chmod 600 "$dir/private.pth"
convert "$dir/private.pth" --force > /dev/null || fail "convert over an existing file failed"
[ "$(stat -c %a "$dir/private.pth")" = 600 ] || fail "mode 600 became $(stat -c %a "$dir/private.pth")"

# A character device is written in place, not replaced by a file.
convert /dev/null > /dev/null || fail "convert to /dev/null failed"
[ -c /dev/null ] || fail "/dev/null is no longer a character device"

# A FIFO is written in place: a reader gets the bytes, the FIFO stays.
mkfifo "$dir/pipe"
cat "$dir/pipe" > "$dir/from_pipe" &
convert "$dir/pipe" > /dev/null || fail "convert to a FIFO failed"
wait
[ -p "$dir/pipe" ] || fail "the FIFO was replaced"
cmp -s "$dir/from_pipe" "$dir/target.pth" || fail "the FIFO's reader did not get the checkpoint"

# A directory is refused with one line and exit status 1.
mkdir "$dir/out.pth"
message=$(convert "$dir/out.pth" 2>&1 > /dev/null)
status=$?
[ "$status" -eq 1 ] || fail "convert to a directory exited with $status"
printf '%s\n' "$message" | grep -q "cannot write '$dir/out.pth': it is a directory" \
  || fail "unexpected message: $message"
[ "$(printf '%s\n' "$message" | wc -l)" -eq 1 ] || fail "more than one line: $message"

# No temporary files are left behind.
leftover=$(find "$dir" -name '*.tmp.*')
[ -z "$leftover" ] || fail "temporary files left: $leftover"
echo ok

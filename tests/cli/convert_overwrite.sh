#!/bin/sh
# usage: convert_overwrite.sh DENSENET PYTHON
# Issue 21 item 8: `convert --output` replaces an existing file only with --force, as train
# replaces a run only with --force. Writing onto its own input (by name, through a symlink or a
# hard link) is refused with its own message and leaves the input intact; with --force it works,
# since the input is read whole before the atomic write.
densenet=$1
python=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$python" -c "
import torch
torch.save({'w': torch.arange(6.).reshape(2, 3)}, '$dir/in.pth', _use_new_zipfile_serialization=False)
" || fail "cannot write the input checkpoint"
cp "$dir/in.pth" "$dir/original.pth"
convert() { "$densenet" convert --checkpoint "$dir/in.pth" --output "$@"; }

# refused OUTPUT REGEX: convert exits with 1 and one line matching REGEX; OUTPUT is unchanged.
refused() {
  cp "$1" "$dir/before"
  message=$(convert "$1" 2>&1 > /dev/null)
  status=$?
  [ "$status" -eq 1 ] || fail "convert to '$1' exited with $status: $message"
  printf '%s\n' "$message" | grep -Eq -- "$2" || fail "unexpected message: $message"
  [ "$(printf '%s\n' "$message" | wc -l)" -eq 1 ] || fail "more than one line: $message"
  cmp -s "$1" "$dir/before" || fail "'$1' was changed"
  echo "ok: $message"
}

# The input itself: by its name, through a symlink, through a hard link.
ln -s in.pth "$dir/link.pth"
ln "$dir/in.pth" "$dir/hard.pth"
for output in "$dir/in.pth" "$dir/link.pth" "$dir/hard.pth"; do
  refused "$output" "--output '$output' is the --checkpoint file itself: .*add --force"
done
# Another existing file.
printf 'keep me' > "$dir/other.pth"
refused "$dir/other.pth" "--output '$dir/other.pth' exists: add --force to replace it"

# A new file needs no --force; --force replaces another file and the input itself.
convert "$dir/new.pth" > /dev/null || fail "convert to a new file failed"
convert "$dir/other.pth" --force > /dev/null || fail "convert --force over a file failed"
cmp -s "$dir/other.pth" "$dir/new.pth" || fail "--force did not write the checkpoint"
convert "$dir/in.pth" --force > /dev/null || fail "convert --force onto its input failed"
"$python" -c "
import sys, zipfile, torch
assert zipfile.is_zipfile('$dir/in.pth'), 'not rewritten in the zip format'
assert torch.equal(torch.load('$dir/in.pth')['w'], torch.load('$dir/original.pth')['w'])
" || fail "the input converted in place lost its tensors"
echo ok

#!/bin/sh
# usage: fuzz_short.sh SOURCE_DIR FUZZ_BUILD_DIR SEED_FILES_DIR TORCH_DIR GENERATOR SECONDS
# Builds the checkpoint reader's libFuzzer target (clang, ASan, UBSan) and fuzzes it for
# SECONDS, starting from small checkpoints Python wrote. Fails on any crash, leak, sanitizer
# report, timeout or out-of-memory (libFuzzer exits non-zero and leaves the input beside it).
set -eu
source_dir=$1 build=$2 seed_files=$3 torch_dir=$4 generator=$5 seconds=$6
CXX=clang++ cmake -S "$source_dir/fuzz" -B "$build" -G "$generator" -DTorch_DIR="$torch_dir" >/dev/null
cmake --build "$build"
mkdir -p "$build/corpus" "$build/seeds"
for name in generic_zip.pth generic_legacy.pth truncated_zip.pth truncated_legacy.pth \
            malicious_system_zip.pth malicious_eval_legacy.pth compressed.pth text.pth \
            torchscript.pt; do
  cp "$seed_files/$name" "$build/seeds/"
done
exec "$build/fuzz_checkpoint" "$build/corpus" "$build/seeds" -max_total_time="$seconds" \
  -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 -artifact_prefix="$build/"

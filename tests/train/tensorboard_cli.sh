#!/bin/bash
# usage: tensorboard_cli.sh CASE DENSENET WORKDIR
# The TensorBoard event files of `densenet train`, read back by TensorBoard's own reader
# (tests/train/check_tensorboard.py in the tools venv, scripts/tools_venv.sh). Runs are tiny
# (synthetic 16x16 images, as in train_cli.sh).
set -u
case_name=$1
densenet=$2
work=$3/$case_name
source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
source "$source_dir/tests/support/cli_case.sh"
tiny=(--dataset synthetic --input-size 16 --max-train-samples 64 --max-eval-samples 32
      --batch-size 16 "${tiny_model[@]}")

train_ok() { "$densenet" train "${tiny[@]}" "$@" >"$work/out" 2>&1 || fail "train $*: $(cat "$work/out")"; }
events() { find "$1" -maxdepth 1 -name 'events.out.tfevents.*' | wc -l; }
check() {
  local python
  python=$("$source_dir/scripts/tools_venv.sh") || fail "no tools venv"
  "$python" "$source_dir/tests/train/check_tensorboard.py" "$@" || fail "check_tensorboard.py $*"
}

case $case_name in
  run)
    # 4 steps per epoch, a point every 3 steps and at each epoch's end (3, 4, 6, 8); bf16 with a
    # dynamic loss scale adds the loss-scale tags.
    train_ok --epochs 2 --log-interval 3 --amp bf16 --loss-scale dynamic --output-dir "$work/run"
    [ "$(events "$work/run")" -eq 1 ] || fail "expected one event file: $(ls "$work/run")"
    check "$work/run" --steps-per-epoch 4 --log-interval 3 --loss-scaling
    # One point per epoch, each the mean of the whole epoch; a validation split names the tags;
    # model-ema adds epoch/ema_validation_*.
    train_ok --epochs 2 --log-interval 1000 --valid-size 32 --model-ema --output-dir "$work/whole"
    check "$work/whole" --steps-per-epoch 4 --log-interval 1000 --eval-name validation --whole-epoch
    ;;
  resume)
    # kill -9 in epoch 2, after the stdio buffer has put some of epoch 2's events on disk: the
    # last checkpoint is epoch 1's, the event file goes further. The resumed run's SessionLog
    # START makes TensorBoard drop those orphans, so every step shows once.
    long=(--max-train-samples 1024 --batch-size 4 --epochs 2 --log-interval 1)
    "$densenet" train "${tiny[@]}" "${long[@]}" --output-dir "$work/run" >"$work/out" 2>&1 &
    pid=$!
    for _ in $(seq 1 1200); do grep -q '^epoch 2/2 step 40/' "$work/out" && break; sleep 0.05; done
    kill -KILL $pid
    wait $pid 2>/dev/null
    grep -q '^epoch 2/2 step 40/' "$work/out" || fail "epoch 2 never reached step 40: $(tail -3 "$work/out")"
    grep -q '^epoch 2/2 step 256/' "$work/out" && fail "the run ended epoch 2 before it was killed"
    "$densenet" train --resume "$work/run" >"$work/out2" 2>&1 || fail "resume: $(cat "$work/out2")"
    [ "$(events "$work/run")" -eq 2 ] || fail "expected two event files: $(ls "$work/run")"
    check "$work/run" --steps-per-epoch 256 --log-interval 1 --orphans
    # Ctrl-C mid-epoch: the open interval's point is written at the stop step, and the resumed
    # run goes on from there (the stop step once, no orphans to purge).
    # 256 steps an epoch (all 1024 synthetic images, 4 a step): the signal lands mid-epoch
    # however loaded the machine is.
    "$densenet" train "${tiny[@]}" --max-train-samples 1024 --batch-size 4 --epochs 2 --log-interval 5 \
      --output-dir "$work/stopped" >"$work/out" 2>&1 &
    pid=$!
    for _ in $(seq 1 1200); do grep -q '^epoch 1/2 step 10/' "$work/out" && break; sleep 0.05; done
    kill -INT $pid
    wait $pid
    [ $? -eq 130 ] || fail "no clean stop after SIGINT: $(cat "$work/out")"
    where=$(sed -n 's/^stopped at epoch \([0-9]*\), step \([0-9]*\):.*/\1 \2/p' "$work/out")
    [ -n "$where" ] || fail "stopped at an epoch's end, not mid-epoch: $(grep stopped "$work/out")"
    read -r epoch step <<<"$where"
    "$densenet" train --resume "$work/stopped" >"$work/out2" 2>&1 || fail "resume: $(cat "$work/out2")"
    check "$work/stopped" --steps-per-epoch 256 --log-interval 5 --stop-step $(( (epoch - 1) * 256 + step ))
    ;;
  off_and_force)
    # tensorboard false: no event file. --force over a run removes its event files (they would
    # pass for the new run's); a resumed run adds a file of its own.
    train_ok --epochs 1 --tensorboard false --output-dir "$work/off"
    [ "$(events "$work/off")" -eq 0 ] || fail "tensorboard false wrote $(ls "$work/off")"
    grep -q "^tensorboard: false" "$work/off/config.yaml" || fail "config.yaml: $(cat "$work/off/config.yaml")"
    train_ok --epochs 1 --output-dir "$work/run"
    touch "$work/run/notes.txt"
    train_ok --epochs 1 --output-dir "$work/run" --force
    [ "$(events "$work/run")" -eq 1 ] || fail "--force kept the previous run's events: $(ls "$work/run")"
    [ -f "$work/run/notes.txt" ] || fail "--force removed a file that is not the run's"
    "$densenet" train --resume "$work/run" --epochs 2 >"$work/out" 2>&1 || fail "resume: $(cat "$work/out")"
    [ "$(events "$work/run")" -eq 2 ] || fail "the resumed run has no event file of its own: $(ls "$work/run")"
    # Turned off on resume (a key that may change): no new file.
    "$densenet" train --resume "$work/run" --epochs 3 --tensorboard false >"$work/out" 2>&1 ||
      fail "resume with tensorboard false: $(cat "$work/out")"
    [ "$(events "$work/run")" -eq 2 ] || fail "tensorboard false on resume wrote events: $(ls "$work/run")"
    echo "ok" ;;
  write_error)
    # A file-size limit that the checkpoints and metrics stay under but the event file (a point
    # every step) outgrows in epoch 2: EFBIG, as a full disk gives ENOSPC. One warning line, the
    # run goes on to its end, and the events before the failure still read.
    long=(--max-train-samples 1024 --batch-size 4 --epochs 2 --log-interval 1)
    train_ok "${long[@]}" --epochs 1 --output-dir "$work/probe"
    file=$(find "$work/probe" -maxdepth 1 -name 'events.out.tfevents.*')
    largest=$(find "$work/probe" -maxdepth 1 -type f ! -name 'events.out.tfevents.*' -printf '%s\n' | sort -n | tail -1)
    event_bytes=$(stat -c %s "$file")
    limit_kib=$(( (largest > event_bytes / 2 ? largest : event_bytes / 2) / 1024 + 16 ))
    [ $(( limit_kib * 1024 )) -lt $(( event_bytes * 2 )) ] ||
      fail "cannot size the limit: largest other file $largest bytes, events $event_bytes per epoch"
    bash -c "trap '' XFSZ; ulimit -f $limit_kib; exec \"\$0\" \"\$@\"" \
      "$densenet" train "${tiny[@]}" "${long[@]}" --output-dir "$work/run" >"$work/out" 2>&1 ||
      fail "the run stopped: $(tail -3 "$work/out")"
    [ "$(grep -c 'TensorBoard' "$work/out")" -eq 1 ] || fail "not one warning: $(grep TensorBoard "$work/out")"
    grep -q "^warning: TensorBoard events are no longer written (training goes on; metrics.csv has every epoch): cannot write the TensorBoard event file '.*': File too large$" "$work/out" ||
      fail "warning: $(grep TensorBoard "$work/out")"
    grep -q "^epoch 2/2 " "$work/out" || fail "the run did not finish: $(tail -3 "$work/out")"
    [ "$(wc -l < "$work/run/metrics.csv")" -eq 3 ] || fail "metrics.csv: $(cat "$work/run/metrics.csv")"
    echo "ok: $(grep TensorBoard "$work/out")" ;;
  checkpoint_fails)
    # A checkpoint write that fails (a full disk; here a file-size limit, as train_cli.sh's
    # disk_full) must not take the points of the steps before it along: they are flushed before
    # the checkpoint. Epoch 2 (steps 5-8, points at 6 and 8) is logged but never saved, so it
    # has train/ points and no epoch/ points.
    train_ok --epochs 1 --log-interval 3 --output-dir "$work/run"
    # Just under a checkpoint: the other files (curves.png) stay under it.
    size_kib=$(( $(stat -c %s "$work/run/last.pth") / 1024 - 4 ))
    cp -r "$work/run" "$work/killed"
    # SIGXFSZ at its default: the process dies in the write, as nothing after it runs (no
    # destructor writes what a buffer still holds).
    bash -c "trap - XFSZ; ulimit -f $size_kib; exec \"\$0\" \"\$@\"" \
      "$densenet" train "${tiny[@]}" --epochs 2 --log-interval 3 --resume "$work/killed" >"$work/out" 2>&1
    status=$?
    [ $status -eq $((128 + 25)) ] || fail "not killed by SIGXFSZ in the checkpoint write: status $status: $(tail -3 "$work/out")"
    check "$work/killed" --steps-per-epoch 4 --log-interval 3 --last-epoch-unsaved
    # SIGXFSZ ignored: the write fails with EFBIG (a full disk: ENOSPC), the run stops with the
    # checkpoint's one error line, status 1, and no TensorBoard warning (its writes succeeded).
    bash -c "trap '' XFSZ; ulimit -f $size_kib; exec \"\$0\" \"\$@\"" \
      "$densenet" train "${tiny[@]}" --epochs 2 --log-interval 3 --resume "$work/run" >"$work/out" 2>&1
    status=$?
    [ $status -eq 1 ] || fail "status $status: $(tail -3 "$work/out")"
    grep -q "could not write a checkpoint (the previous one is intact)" "$work/out" || fail "$(tail -3 "$work/out")"
    grep -q "TensorBoard" "$work/out" && fail "a TensorBoard warning: $(grep TensorBoard "$work/out")"
    check "$work/run" --steps-per-epoch 4 --log-interval 3 --last-epoch-unsaved ;;
  *) fail "unknown case" ;;
esac

#!/bin/bash
# usage: train_cli.sh CASE DENSENET WORKDIR
# One bad-input case of `densenet train`/`densenet eval`: a clear one-line error, a failure
# status (1 or 2, never a signal), and nothing lost. Runs are tiny (synthetic 16x16 images).
set -u
case_name=$1
densenet=$2
work=$3/$case_name
source "$(dirname "$0")/../support/cli_case.sh"
tiny=(--dataset synthetic --input-size 16 --max-train-samples 64 --max-eval-samples 32
      --batch-size 16 "${tiny_model[@]}")

# expect REGEX COMMAND...: COMMAND fails (status 1-2, or exactly $EXPECTED_STATUS when set) with
# one error line matching REGEX.
expect() { expect_failure "${EXPECTED_STATUS:-1-2}" "$@"; }

# straight_and_resumed ARGS...: a run of ARGS over 2 epochs in straight/, and one stopped after
# epoch 1 in resumed/ and resumed to 2 (its output in out and stderr).
straight_and_resumed() {
  train_ok "$@" --epochs 2 --output-dir "$work/straight"
  train_ok "$@" --epochs 1 --output-dir "$work/resumed"
  "$densenet" train --resume "$work/resumed" --epochs 2 >"$work/out" 2>"$work/stderr" ||
    fail "resume: $(cat "$work/stderr")"
}

train_ok() { "$densenet" train "${tiny[@]}" "$@" >/dev/null 2>"$work/stderr" || fail "train $*: $(cat "$work/stderr")"; }

case $case_name in
  missing_dataset)
    expect "dataset root '/nonexistent/fashion' does not exist; install Debian's dataset-fashion-mnist" \
      "$densenet" train --data /nonexistent/fashion --output-dir "$work/run" ;;
  config_not_yaml)
    printf 'epochs: [1, 2\n' > "$work/bad.yaml"
    expect "is not a YAML file: .* at line" "$densenet" train --config "$work/bad.yaml" ;;
  config_unknown_key)
    printf 'learning-rate: 0.1\n' > "$work/bad.yaml"
    expect "bad.yaml: unknown config key 'learning-rate'" "$densenet" train --config "$work/bad.yaml"
    # No close key: the error points to --help once.
    printf 'bogus-key: 1\n' > "$work/bad.yaml"
    EXPECTED_STATUS=2 expect "bad.yaml: unknown config key 'bogus-key' \(see 'densenet train --help'\)$" \
      "$densenet" train --config "$work/bad.yaml" ;;
  config_bad_value)
    printf 'optimizer: lamb\n' > "$work/bad.yaml"
    expect "config key 'optimizer': unknown value 'lamb': use one of sgd, adamw" \
      "$densenet" train --config "$work/bad.yaml" --output-dir "$work/run" ;;
  flag_bad_value)
    expect "config key 'epochs': expected an integer, got 'ten'" "$densenet" train --epochs ten ;;
  config_is_directory)
    expect "config file '.*' is a directory" "$densenet" train --config "$work" ;;
  resume_missing)
    EXPECTED_STATUS=2 expect "cannot resume from '$work/none.pth': no such file or directory" \
      "$densenet" train --resume "$work/none.pth" ;;
  resume_corrupt)
    head -c 3000 /dev/urandom > "$work/corrupt.pth"
    expect "corrupt.pth" "$densenet" train --resume "$work/corrupt.pth" ;;
  resume_not_training_checkpoint)
    train_ok --epochs 1 --output-dir "$work/run"
    /usr/bin/python3 -c "import torch,sys; d=torch.load(sys.argv[1], weights_only=True); torch.save(d['model'], sys.argv[2])" \
      "$work/run/last.pth" "$work/weights.pth" || fail "python"
    expect "is not a densenet training checkpoint: no 'config'" \
      "$densenet" train --resume "$work/weights.pth" ;;
  resume_other_architecture)
    train_ok --epochs 1 --lr-type multistep --output-dir "$work/run"
    EXPECTED_STATUS=2 expect "cannot change 'growth-rate' when resuming: the run has 4, given 8" \
      "$densenet" train "${tiny[@]}" --growth-rate 8 --resume "$work/run"
    # Compared as built: bn-size and num-init-features the run left to its preset are named
    # with their values (not '~'); giving those same values changes nothing.
    EXPECTED_STATUS=2 expect "cannot change 'bn-size' when resuming: the run has 4, given 2" \
      "$densenet" train --bn-size 2 --resume "$work/run"
    EXPECTED_STATUS=2 expect "cannot change 'stem' when resuming: the run has cifar, given imagenet" \
      "$densenet" train --stem imagenet --resume "$work/run"
    # Extended to 2 epochs, the default milestones become 1,1.5: given, they change nothing.
    "$densenet" train --bn-size 4 --num-init-features 8 --stem cifar --milestones 1,1.5 \
      --lr-type multistep --resume "$work/run" \
      --epochs 2 > /dev/null 2>"$work/stderr" || fail "resume with the run's own values: $(cat "$work/stderr")" ;;
  resume_amp_key)
    # A key given alone on resume is checked against the run's own configuration, not against
    # the defaults: the refusal names the key, as a usage error.
    train_ok --epochs 1 --amp bf16 --loss-scale dynamic --output-dir "$work/run"
    EXPECTED_STATUS=2 expect "cannot change 'loss-scale-init' when resuming: the run has 65536, given 8" \
      "$densenet" train --resume "$work/run" --loss-scale-init 8 --epochs 2
    EXPECTED_STATUS=2 expect "config key 'epochs' must be in \[1, 100000\]" \
      "$densenet" train --resume "$work/run" --epochs 0 ;;
  eval_other_architecture)
    train_ok --epochs 1 --output-dir "$work/run"
    /usr/bin/python3 -c "import torch,sys; d=torch.load(sys.argv[1], weights_only=True); torch.save(d['model'], sys.argv[2])" \
      "$work/run/last.pth" "$work/weights.pth" || fail "python"
    # What the weights are, the flag that fits them, the field that differs (issue 21 item 7:
    # not the 24 missing keys).
    for regex in "'.*weights.pth' holds densenet-bc-40 with --growth-rate 4 --block-config 2,2, not densenet-bc-40 with --growth-rate 4 --block-config 3,3: use --block-config 2,2$" \
                 "^  block-config: 2,2 in the weights, 3,3 in the model$"; do
      expect "$regex" "$densenet" eval --weights "$work/weights.pth" --dataset synthetic \
        --input-size 16 --arch densenet-bc-40 --block-config 3,3 --growth-rate 4 --threads 1
    done
    [ "$("$densenet" eval --weights "$work/weights.pth" --dataset synthetic --input-size 16 \
        --arch densenet-bc-40 --block-config 3,3 --growth-rate 4 --threads 1 2>&1 | wc -l)" -eq 2 ] ||
      fail "the error is not two lines"
    # A training checkpoint carries its architecture: another one asked for is refused, the
    # same one is accepted.
    EXPECTED_STATUS=2 expect "is a training checkpoint of densenet-bc-40 \(growth-rate 4\), not growth-rate 8: its architecture comes from it; drop --growth-rate" \
      "$densenet" eval --weights "$work/run/last.pth" --growth-rate 8 --threads 1
    EXPECTED_STATUS=2 expect "is a training checkpoint of densenet-bc-40, not arch densenet121" \
      "$densenet" eval --weights "$work/run/last.pth" --arch densenet121 --threads 1
    EXPECTED_STATUS=2 expect "config key 'arch': unknown architecture 'nonsense': choose one of densenet121" \
      "$densenet" eval --weights "$work/run/last.pth" --arch nonsense --threads 1
    EXPECTED_STATUS=2 expect "config key 'arch': unknown architecture 'nonsense': choose one of densenet121" \
      "$densenet" train --arch nonsense --output-dir "$work/refused"
    [ ! -e "$work/refused" ] || fail "the refused run created its directory"
    # Compared as built: the preset's own bn-size (4) given explicitly is the same model, and an
    # input size the checkpoint's 3,3 blocks take is checked against them, not the preset's.
    "$densenet" eval --weights "$work/run/last.pth" --bn-size 4 --input-size 8 --threads 1 \
      > /dev/null || fail "eval with the checkpoint's own bn-size failed"
    # A larger input keeps the stem the weights have (a 3x3 first convolution), rather than the
    # one the size alone would choose.
    "$densenet" eval --weights "$work/run/last.pth" --input-size 64 --threads 1 > /dev/null ||
      fail "eval at --input-size 64 did not keep the checkpoint's stem"
    EXPECTED_STATUS=2 expect "is a training checkpoint of densenet-bc-40 \(bn-size 4\), not bn-size 2" \
      "$densenet" eval --weights "$work/run/last.pth" --bn-size 2 --threads 1
    "$densenet" eval --weights "$work/run/last.pth" --arch densenet-bc-40 --growth-rate 4 \
      --threads 1 > /dev/null || fail "eval with the checkpoint's own architecture failed" ;;
  channels_last)
    # NHWC in memory naive: runs, and resumes exactly; refused with the stages' modes.
    expect "config key 'channels-last' applies to memory naive only .*add --memory naive" \
      "$densenet" train "${tiny[@]}" --channels-last --epochs 1 --output-dir "$work/refused"
    # Milestones given: the schedule does not change with --epochs, so 1 + 1 epochs equal 2.
    cl=(--memory naive --channels-last --lr-type multistep --milestones 1)
    train_ok "${cl[@]}" --epochs 2 --output-dir "$work/full"
    train_ok "${cl[@]}" --epochs 1 --output-dir "$work/part"
    "$densenet" train --resume "$work/part" --epochs 2 > /dev/null 2>&1 || fail "resume failed"
    /usr/bin/python3 - "$work/full/last.pth" "$work/part/last.pth" <<'PY' || fail "resume not exact"
import sys, torch
a = torch.load(sys.argv[1], weights_only=True)["model"]
b = torch.load(sys.argv[2], weights_only=True)["model"]
for name, tensor in a.items():
    assert torch.equal(tensor, b[name]), name
PY
    ;;
  occupied_output_dir)
    train_ok --epochs 1 --output-dir "$work/run"
    cp "$work/run/last.pth" "$work/before.pth"
    EXPECTED_STATUS=2 expect "output-dir '$work/run' already holds a run: continue it with --resume" \
      "$densenet" train "${tiny[@]}" --epochs 1 --output-dir "$work/run"
    cmp -s "$work/run/last.pth" "$work/before.pth" || fail "last.pth changed" ;;
  metrics_without_checkpoint)
    # A directory with a failed run's metrics but no checkpoint (nothing to resume) is reused by
    # the same command run again; the stale metrics go, other files stay.
    mkdir -p "$work/run"
    printf 'epoch\n1\n2\n3\n' > "$work/run/metrics.csv"
    touch "$work/run/notes.txt"
    train_ok --epochs 1 --output-dir "$work/run"
    [ "$(wc -l < "$work/run/metrics.csv")" -eq 2 ] || fail "stale metrics rows kept: $(cat "$work/run/metrics.csv")"
    [ -f "$work/run/notes.txt" ] || fail "a file that is not the run's was removed"
    # A resumed run rewrites config.yaml with what changed, and keeps every earlier metrics row.
    cp "$work/run/metrics.csv" "$work/before.csv"
    "$densenet" train --resume "$work/run" --epochs 2 >/dev/null 2>"$work/stderr" ||
      fail "resume: $(cat "$work/stderr")"
    grep -q "^epochs: 2" "$work/run/config.yaml" || fail "config.yaml: $(grep epochs "$work/run/config.yaml")"
    grep -q "^resume: \"\"" "$work/run/config.yaml" || fail "config.yaml records resume: $(grep resume "$work/run/config.yaml")"
    [ "$(sed -n 2p "$work/run/metrics.csv")" = "$(sed -n 2p "$work/before.csv")" ] ||
      fail "epoch 1's row changed on resume: $(sed -n 2p "$work/before.csv") -> $(sed -n 2p "$work/run/metrics.csv")"
    EXPECTED_STATUS=2 expect "--resume needs a run directory or checkpoint, got an empty value" \
      "$densenet" train --resume "" ;;
  disk_full)
    # A file-size limit makes every checkpoint write fail with EFBIG, as a full disk fails it
    # with ENOSPC: the run must stop with one line and leave the previous checkpoint intact.
    train_ok --epochs 1 --output-dir "$work/run"
    cp "$work/run/last.pth" "$work/before.pth"
    size_kib=$(( $(stat -c %s "$work/run/last.pth") / 1024 / 2 ))
    expect "could not write a checkpoint \(the previous one is intact\)" \
      bash -c "trap '' XFSZ; ulimit -f $size_kib; exec \"\$0\" \"\$@\"" \
      "$densenet" train "${tiny[@]}" --epochs 2 --resume "$work/run"
    cmp -s "$work/run/last.pth" "$work/before.pth" || fail "last.pth changed"
    ls "$work/run"/.last.pth* 2>/dev/null && fail "a temporary file was left behind"
    /usr/bin/python3 -c "import torch,sys; torch.load(sys.argv[1], weights_only=True)" \
      "$work/run/last.pth" || fail "last.pth no longer loads" ;;
  nan_loss)
    # Over a finished run with --force: the previous run's checkpoints go first (none of them
    # may pass for the new run's), so the stop says that no checkpoint holds good weights.
    train_ok --epochs 1 --save-interval 1 --output-dir "$work/run"
    [ -f "$work/run/checkpoint-001.pth" ] || fail "no numbered checkpoint: $(ls "$work/run")"
    touch "$work/run/notes.txt"
    expect "the loss is (nan|inf|-inf) at epoch 1, step [0-9]+ .*training stopped before the update; no checkpoint was written" \
      "$densenet" train "${tiny[@]}" --epochs 1 --lr 1e30 --output-dir "$work/run" --force
    for old in last.pth best.pth checkpoint-001.pth metrics.csv; do
      [ -e "$work/run/$old" ] && fail "--force left the previous run's $old"
    done
    [ -f "$work/run/notes.txt" ] || fail "--force removed a file that is not the run's"
    grep -q "^force: false" "$work/run/config.yaml" ||
      fail "config.yaml records force: $(grep force "$work/run/config.yaml")" ;;
  sigint_resumes)
    # Ctrl-C: a checkpoint at the next step, a message saying how to resume, exit 130; the
    # resumed run then finishes.
    "$densenet" train "${tiny[@]}" --max-train-samples 1024 --input-size 32 --epochs 2 \
      --log-interval 1 --output-dir "$work/run" > "$work/out" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do grep -q 'step 1/' "$work/out" 2>/dev/null && break; sleep 0.05; done
    kill -INT $pid
    wait $pid
    status=$?
    [ "$status" -eq 130 ] || fail "exit status $status after SIGINT, not 130: $(cat "$work/out")"
    grep -q "densenet train --resume $work/run" "$work/out" || fail "no resume hint: $(cat "$work/out")"
    "$densenet" train --resume "$work/run" > "$work/out2" 2>&1 || fail "resume: $(cat "$work/out2")"
    grep -q "epoch 2/2 " "$work/out2" || fail "resumed run did not finish: $(cat "$work/out2")"
    echo "ok" ;;
  config_duplicate_key)
    printf 'seed: 5\nseed: 7\n' > "$work/dup.yaml"
    expect "key 'seed' is given twice" "$densenet" train --config "$work/dup.yaml" ;;
  out_of_memory)
    # The memory plan's need far above the machine's: refused before anything is allocated or
    # written.
    expect "this run needs about .* but .* is available: use a smaller batch-size" \
      "$densenet" train "${tiny[@]}" --input-size 16384 --output-dir "$work/run"
    [ ! -e "$work/run" ] || fail "the refused run created its directory" ;;
  resume_into_another_run)
    train_ok --epochs 1 --output-dir "$work/a"
    train_ok --epochs 1 --output-dir "$work/b"
    cp "$work/b/last.pth" "$work/before.pth"
    EXPECTED_STATUS=2 expect "output-dir '$work/b' already holds a run" \
      "$densenet" train --resume "$work/a" --epochs 2 --output-dir "$work/b"
    cmp -s "$work/b/last.pth" "$work/before.pth" || fail "b/last.pth changed" ;;
  resume_elsewhere)
    # Resumed into another output-dir: with nothing left to train, nothing is written there (it
    # would be a run without a checkpoint); with epochs left, best.pth comes along, as the best
    # epoch so far may be behind.
    train_ok --epochs 1 --lr 1e-9 --output-dir "$work/a"
    "$densenet" train --resume "$work/a" --output-dir "$work/b" >"$work/out" 2>&1 ||
      fail "nothing to do: $(cat "$work/out")"
    grep -q "nothing to do" "$work/out" || fail "no 'nothing to do': $(cat "$work/out")"
    [ ! -e "$work/b" ] || fail "nothing to do, yet $(ls "$work/b") written"
    # Trial report: the closing line named the output-dir it did not create.
    grep -q "run directory $work/b" "$work/out" && fail "names $work/b, never created: $(cat "$work/out")"
    grep -q "output-dir $work/b is not created" "$work/out" || fail "not said: $(cat "$work/out")"
    grep -q "^done: .*; run directory $work/a$" "$work/out" || fail "done line: $(cat "$work/out")"
    "$densenet" train --resume "$work/a" --epochs 2 --output-dir "$work/c" >/dev/null 2>"$work/stderr" ||
      fail "resume elsewhere: $(cat "$work/stderr")"
    /usr/bin/python3 -c "import torch,sys; torch.load(sys.argv[1], weights_only=True)" "$work/c/best.pth" ||
      fail "no loadable best.pth in the new directory: $(ls "$work/c")"
    echo "ok" ;;
  resume_moved_run)
    # A copied run directory continues in the copy; the original is not touched.
    train_ok --epochs 1 --output-dir "$work/a"
    cp -r "$work/a" "$work/copy"
    cp "$work/a/last.pth" "$work/before.pth"
    "$densenet" train --resume "$work/copy" --epochs 2 >/dev/null 2>"$work/stderr" ||
      fail "resume: $(cat "$work/stderr")"
    cmp -s "$work/a/last.pth" "$work/before.pth" || fail "the original's last.pth changed"
    [ -e "$work/copy/checkpoint-002.pth" ] || fail "the copy has no epoch 2"
    [ ! -e "$work/a/checkpoint-002.pth" ] || fail "epoch 2 was written into the original"
    echo "ok" ;;
  amp_bad_value)
    # Mixed-precision keys are config keys: a bad value is a usage error (exit 2), one line.
    EXPECTED_STATUS=2 expect "config key 'amp': unknown value 'fp32x': use one of none, fp16, bf16" \
      "$densenet" train --amp fp32x
    EXPECTED_STATUS=2 expect "config key 'loss-scale': unknown value 'static': use one of auto, dynamic, none" \
      "$densenet" train --amp bf16 --loss-scale static
    EXPECTED_STATUS=2 expect "config key 'loss-scale' dynamic applies to amp fp16 or bf16 runs" \
      "$densenet" train --loss-scale dynamic
    EXPECTED_STATUS=2 expect "config key 'loss-scale-growth-interval' applies to the dynamic loss scale only \(this run has amp bf16, loss-scale auto\): set loss-scale dynamic, or leave it out" \
      "$densenet" train --amp bf16 --loss-scale-growth-interval 10
    EXPECTED_STATUS=2 expect "config keys 'loss-scale-init' and 'loss-scale-growth-interval' apply to the dynamic loss scale only" \
      "$densenet" train --amp bf16 --loss-scale-growth-interval 10 --loss-scale-init 8 ;;
  sync_bn_one_process)
    # Accepted (a config written for several ranks runs on one), with a note that it does
    # nothing here.
    "$densenet" train "${tiny[@]}" --epochs 1 --sync-bn --output-dir "$work/run" >"$work/out" \
      2>"$work/stderr" || fail "train: $(cat "$work/stderr")"
    grep -q "note: sync-bn has no effect in a single process" "$work/out" ||
      fail "no note: $(cat "$work/out")"
    grep -q "^sync-bn: true" "$work/run/config.yaml" || fail "config.yaml: $(cat "$work/run/config.yaml")"
    # A yes/no flag also takes a value, with or without '='.
    for form in "--sync-bn false" "--sync-bn=false" "--sync_bn no"; do
      # shellcheck disable=SC2086
      "$densenet" train "${tiny[@]}" --epochs 1 $form --output-dir "$work/off" --force \
        >"$work/out" 2>"$work/stderr" || fail "train $form: $(cat "$work/stderr")"
      grep -q "^sync-bn: false" "$work/off/config.yaml" || fail "$form: $(grep sync "$work/off/config.yaml")"
      grep -q "note: sync-bn" "$work/out" && fail "$form: a note for sync-bn off"
    done
    EXPECTED_STATUS=2 expect "config key 'sync-bn': expected true or false, got 'maybe'" \
      "$densenet" train "${tiny[@]}" --sync-bn maybe
    echo "ok" ;;
  amp_fp16_cpu)
    # float16 autocast on the CPU: refused (exit 2, one line) by a LibTorch that cannot run it
    # (1.13); a LibTorch that can trains with it.
    if "$densenet" train "${tiny[@]}" --epochs 1 --amp fp16 --output-dir "$work/run" \
         >"$work/out" 2>"$work/stderr"; then
      grep -q "amp: fp16 autocast, float32 weights" "$work/out" || fail "no amp line: $(cat "$work/out")"
      echo "ok: this LibTorch runs fp16 on the CPU"
    else
      EXPECTED_STATUS=2 expect "config key 'amp': fp16 on device cpu needs float16 autocast, which this LibTorch \(.*\) has only on CUDA: use amp bf16" \
        "$densenet" train "${tiny[@]}" --epochs 1 --amp fp16 --output-dir "$work/run"
      [ ! -e "$work/run/config.yaml" ] || fail "the refused run wrote its directory"
    fi ;;
  amp_resume_exact)
    # bf16 autocast with a dynamic loss scale that grows every 4 clean steps (6 steps per
    # epoch): stopped after epoch 1 (clean-step count 2) and resumed, the run ends with the
    # uninterrupted run's weights, optimiser state, scale and count, bit for bit; a scale or a
    # count not restored would grow at other steps. (Skipped steps cannot be provoked here: this
    # network's gradients stay below 1, so even float32's largest scale does not overflow them;
    # tests/train/test_loss_scaler.cpp injects them. lr-type step: the learning rate does not
    # depend on the number of epochs.)
    amp=(--amp bf16 --loss-scale dynamic --loss-scale-init 1024 --loss-scale-growth-interval 4
         --lr-type step --max-train-samples 96)
    straight_and_resumed "${amp[@]}"
    grep -q "^amp: bf16 autocast, float32 weights; dynamic loss scale from 1024" "$work/out" ||
      fail "no amp line in the summary: $(cat "$work/out")"
    grep -q "^epoch 2/2 .* loss scale 8192, 0 steps skipped" "$work/out" ||
      fail "no loss scale in the epoch line: $(cat "$work/out")"
    /usr/bin/python3 - "$work/straight" "$work/resumed" <<'PY' || fail "the resumed run differs"
import csv, sys, torch
a, b = (torch.load(d + "/last.pth", weights_only=True) for d in sys.argv[1:3])
assert a["global_step"] == b["global_step"] == 12, (a["global_step"], b["global_step"])
for key, tensor in a["model"].items():
    assert torch.equal(tensor, b["model"][key]), "weights differ: " + key
for index, state in a["optimizer"]["state"].items():
    assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][index]["momentum_buffer"])
sa, sb = a["scaler"], b["scaler"]
for key in ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"):
    assert float(sa[key]) == float(sb[key]), (key, sa[key], sb[key])
# Growth at steps 4, 8 and 12: 1024 * 2^3, the count back at 0.
assert float(sa["scale"]) == 8192 and int(sa["_growth_tracker"]) == 0, sa
rows = [list(csv.DictReader(open(d + "/metrics.csv"))) for d in sys.argv[1:3]]
columns = [[(r["skipped_steps"], r["loss_scale"], r["train_loss"]) for r in run] for run in rows]
assert columns[0] == columns[1] == [("0", "2048", columns[0][0][2]), ("0", "8192", columns[0][1][2])], columns
print("ok: scale %g, growth tracker %d, (skipped, scale, train loss) per epoch %s"
      % (float(sa["scale"]), int(sa["_growth_tracker"]), columns[0]))
PY
    ;;
  pretrained_finetune)
    # Fine-tuning torchvision's densenet121 (make_checkpoints.py: its published layout, legacy
    # keys, random weights) on make_data.py's 3-class image folder: the classifier is
    # re-initialised, and the run says so. (Every other tensor starting equal to the file's is
    # tests/io/test_pretrained.cpp's job.) timm's spelling is the same key on the command line
    # and in YAML. On resume the file is recorded, not reloaded (it may be gone), and may not
    # change.
    cp "${DENSENET_CHECKPOINT_DIR:?}/densenet121_legacy.pth" "$work/tv.pth"
    folder=(--dataset imagefolder --data "${DENSENET_DATA_DIR:?}/folder" --arch densenet121
            --input-size 32 --stem imagenet --batch-size 4 --test-batch-size 8 --lr 0.01
            --threads 1 --workers 0)
    line="pretrained: densenet121 weights from $work/tv.pth; classifier re-initialised for 3 classes (the file has 1000)"
    printf 'initial_checkpoint: %s\n' "$work/tv.pth" > "$work/timm.yaml"
    for form in "--pretrained $work/tv.pth" "--initial-checkpoint $work/tv.pth" "--config $work/timm.yaml"; do
      # shellcheck disable=SC2086
      "$densenet" train "${folder[@]}" --epochs 1 $form --output-dir "$work/run" --force \
        >"$work/out" 2>"$work/stderr" || fail "train $form: $(cat "$work/stderr")"
      grep -qxF "$line" "$work/out" || fail "$form: no line '$line': $(cat "$work/out")"
      grep -qxF "pretrained: $work/tv.pth" "$work/run/config.yaml" ||
        fail "$form: config.yaml: $(grep pretrained "$work/run/config.yaml")"
    done
    grep -q "^epoch 1/1  train loss [0-9.]* " "$work/out" || fail "no epoch line: $(cat "$work/out")"
    rm "$work/tv.pth"
    "$densenet" train --resume "$work/run" --epochs 2 >"$work/out" 2>"$work/stderr" ||
      fail "resume without the file: $(cat "$work/stderr")"
    grep -q "^pretrained:" "$work/out" && fail "the resumed run loaded the file again: $(cat "$work/out")"
    grep -q "^epoch 2/2 " "$work/out" || fail "the resumed run did not train: $(cat "$work/out")"
    EXPECTED_STATUS=2 expect "cannot change 'pretrained' when resuming: the run has $work/tv.pth, given $DENSENET_CHECKPOINT_DIR/densenet121_legacy.pth" \
      "$densenet" train --resume "$work/run" --epochs 3 --initial-checkpoint "$DENSENET_CHECKPOINT_DIR/densenet121_legacy.pth" ;;
  pretrained_errors)
    # A missing file is a command-line mistake; weights of another architecture are one line
    # naming what differs. Nothing is written either way.
    weights=${DENSENET_CHECKPOINT_DIR:?}/densenet121_legacy.pth
    EXPECTED_STATUS=2 expect "config key 'pretrained': no such file '$work/none.pth' \(see" \
      "$densenet" train "${tiny[@]}" --pretrained "$work/none.pth" --output-dir "$work/run"
    # The file's classifier (1000 classes) is replaced: no class count is named (it used to say
    # "holds densenet121 with --num-classes 3", the folder's).
    EXPECTED_STATUS=1 expect "'$weights' holds densenet121, not densenet169: use --arch densenet121$" \
      "$densenet" train --dataset imagefolder --data "${DENSENET_DATA_DIR:?}/folder" --arch densenet169 \
      --input-size 32 --stem imagenet --batch-size 4 --threads 1 --workers 0 --pretrained "$weights" \
      --output-dir "$work/run"
    EXPECTED_STATUS=1 expect "in-channels: 3 in the weights, 1 in the model \(mnist's\)$" \
      "$densenet" train --dataset mnist --data "$DENSENET_DATA_DIR/mnist" --arch densenet121 \
      --input-size 32 --stem imagenet --batch-size 4 --threads 1 --workers 0 --pretrained "$weights" \
      --output-dir "$work/run"
    EXPECTED_STATUS=1 expect "use --stem imagenet" \
      "$densenet" train --dataset imagefolder --data "$DENSENET_DATA_DIR/folder" --arch densenet121 \
      --input-size 32 --batch-size 4 --threads 1 --workers 0 --pretrained "$weights" \
      --output-dir "$work/run"
    [ ! -e "$work/run" ] || fail "a refused run wrote $(ls "$work/run")" ;;
  model_ema_resume_exact)
    # model-ema with a decay far from 1 (so the EMA is far from the weights): stopped after
    # epoch 1 and resumed, the run ends with the uninterrupted run's EMA (state_dict_ema, timm's
    # key), bit for bit, and the same EMA evaluations in metrics.csv; the EMA only observes, so
    # the trained weights are those of the run without it. best_ema.pth is the EMA's weights
    # as a checkpoint's model, which densenet eval reads.
    ema=(--model-ema --model-ema-decay 0.9 --lr-type step --max-train-samples 96)
    train_ok --lr-type step --max-train-samples 96 --epochs 2 --output-dir "$work/plain"
    straight_and_resumed "${ema[@]}"
    grep -q "^model EMA: decay 0.9 per step (timm ModelEmaV3)" "$work/out" ||
      fail "no model EMA line in the summary: $(cat "$work/out")"
    grep -q "^epoch 2/2 .* top-5 [0-9.]*%  EMA test loss [0-9.]* top-1 [0-9.]*% top-5 [0-9.]*%  lr " "$work/out" ||
      fail "no EMA evaluation in the epoch line: $(cat "$work/out")"
    grep -q "^done: best test top-1 .*; EMA best [0-9.]*% at epoch [12]; run directory" "$work/out" ||
      fail "no EMA best in the done line: $(cat "$work/out")"
    "$densenet" eval --weights "$work/straight/best_ema.pth" --threads 1 >"$work/eval" 2>&1 ||
      fail "eval best_ema.pth: $(cat "$work/eval")"
    /usr/bin/python3 - "$work/straight" "$work/resumed" "$work/plain" <<'PY' || fail "the resumed run differs"
import csv, sys, torch
a, b, plain = (torch.load(d + "/last.pth", weights_only=True) for d in sys.argv[1:4])
for key, tensor in a["state_dict_ema"].items():
    assert torch.equal(tensor, b["state_dict_ema"][key]), "EMA differs: " + key
for key, tensor in a["model"].items():
    assert torch.equal(tensor, b["model"][key]), "weights differ: " + key
    assert torch.equal(tensor, plain["model"][key]), "the EMA changed the trained weights: " + key
assert "state_dict_ema" not in plain
assert not torch.equal(a["model"]["classifier.weight"], a["state_dict_ema"]["classifier.weight"])
columns = ["ema_eval_loss", "ema_eval_top1", "ema_eval_top5"]
rows = [[[r[c] for c in columns] for r in csv.DictReader(open(d + "/metrics.csv"))]
        for d in sys.argv[1:3]]
assert rows[0] == rows[1] and len(rows[0]) == 2 and all(v != "" for r in rows[0] for v in r), rows
plain_rows = list(csv.DictReader(open(sys.argv[3] + "/metrics.csv")))
assert all(r[c] == "" for r in plain_rows for c in columns), plain_rows
best = torch.load(sys.argv[1] + "/best_ema.pth", weights_only=True)
assert sorted(best["model"]) == sorted(a["model"]) and "optimizer" not in best, sorted(best)
print("ok: EMA bit-identical after resume; EMA metrics per epoch %s" % rows[0])
PY
    ;;
  model_ema_errors)
    EXPECTED_STATUS=2 expect "config key 'model-ema-decay' applies to the model EMA, which this run does not keep: add model-ema true, or leave it out" \
      "$densenet" train "${tiny[@]}" --model-ema-decay 0.99
    EXPECTED_STATUS=2 expect "config key 'model-ema-decay' must be in \[0, 1\], got 1.5" \
      "$densenet" train "${tiny[@]}" --model-ema --model-ema-decay 1.5
    train_ok --epochs 1 --output-dir "$work/run"
    EXPECTED_STATUS=2 expect "cannot change 'model-ema' when resuming: the run has false, given true" \
      "$densenet" train --resume "$work/run" --model-ema --epochs 2 ;;
  diverged_eval)
    # Issue 21: a run whose weights diverged (lr 1e30, one step per epoch) evaluates to a NaN
    # loss: it stops naming the epoch and saves nothing, and its progress numbers stay short.
    expect "the test loss is (nan|-nan|inf) after epoch 1: the weights diverged; nothing was saved; no checkpoint was written" \
      "$densenet" train "${tiny[@]}" --max-train-samples 16 --epochs 2 --lr 1e30 \
      --lr-type step --log-interval 1 --output-dir "$work/run"
    for file in last.pth best.pth metrics.csv; do
      [ -e "$work/run/$file" ] && fail "a diverged run wrote $file"
    done
    "$densenet" train "${tiny[@]}" --max-train-samples 16 --epochs 2 --lr 1e30 --lr-type step \
      --log-interval 1 --output-dir "$work/run2" > "$work/out" 2>/dev/null
    grep -q "lr 1.00e+30" "$work/out" || fail "the progress line's lr is not short: $(cat "$work/out")"
    grep -q "0000000000" "$work/out" && fail "a number of the output runs to many digits: $(cat "$work/out")"
    # eval of weights with infinite values refuses them before evaluating, naming the tensor.
    train_ok --epochs 1 --output-dir "$work/good"
    /usr/bin/python3 -c "import torch,sys; d=torch.load(sys.argv[1], weights_only=True)['model']; d['classifier.weight'] = torch.full_like(d['classifier.weight'], float('inf')); torch.save(d, sys.argv[2])" \
      "$work/good/last.pth" "$work/inf.pth" || fail "python"
    EXPECTED_STATUS=1 expect "the weights in '$work/inf.pth' hold non-finite values: classifier.weight has 160 non-finite values \(NaN or infinity\) of 160; they give no usable predictions" \
      "$densenet" eval --weights "$work/inf.pth" --dataset synthetic --input-size 16 \
      --arch densenet-bc-40 --block-config 2,2 --growth-rate 4 --threads 1
    # Finite weights whose logits overflow (3e38, float32's largest is 3.4e38): eval's own check
    # of the loss stops it, naming the weights.
    /usr/bin/python3 -c "import torch,sys; d=torch.load(sys.argv[1], weights_only=True)['model']; d['classifier.weight'] = torch.full_like(d['classifier.weight'], 3e38); torch.save(d, sys.argv[2])" \
      "$work/good/last.pth" "$work/huge.pth" || fail "python"
    EXPECTED_STATUS=1 expect "the loss of '$work/huge.pth' on the test set is (nan|-nan|inf): the weights hold values that overflow" \
      "$densenet" eval --weights "$work/huge.pth" --dataset synthetic --input-size 16 \
      --arch densenet-bc-40 --block-config 2,2 --growth-rate 4 --threads 1 ;;
  yaml_bare_lists)
    # Issue 21: a list key in a YAML file takes the flag's bare form the error message suggests.
    printf 'block-config: 2,2\nlr-type: multistep\nmilestones: 1\ngrowth-rate: 4\n' > "$work/c.yaml"
    "$densenet" train --config "$work/c.yaml" --dataset synthetic --input-size 16 \
      --max-train-samples 32 --max-eval-samples 16 --batch-size 16 --epochs 2 --threads 1 \
      --workers 0 --output-dir "$work/run" > "$work/out" 2>"$work/stderr" ||
      fail "bare lists in YAML refused: $(cat "$work/stderr")"
    grep -q "^block-config: \[2, 2\]" "$work/run/config.yaml" || fail "block-config: $(grep block-config "$work/run/config.yaml")"
    grep -q "^milestones: \[1\]" "$work/run/config.yaml" || fail "milestones: $(grep milestones "$work/run/config.yaml")" ;;
  eval_training_keys)
    # Issue 21: eval of a checkpoint on other data ignores the keys of its training alone
    # (crop-padding, a RandomCrop option an image folder refuses), and labels the folder's
    # classes by the checkpoint's class names.
    train_ok --epochs 1 --crop-padding 4 --output-dir "$work/run"
    /usr/bin/python3 - "$work/folder" <<'PY' || fail "python"
import os, sys
from PIL import Image
for split in ("train", "val"):
    for name in ("class3", "class7"):
        os.makedirs(os.path.join(sys.argv[1], split, name), exist_ok=True)
        for i in range(2):
            Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(os.path.join(sys.argv[1], split, name, f"{i}.png"))
PY
    "$densenet" eval --weights "$work/run/last.pth" --dataset imagefolder --data "$work/folder" \
      --input-size 16 --threads 1 > "$work/out" 2>"$work/stderr" ||
      fail "eval on a folder refused a training key: $(cat "$work/stderr")"
    grep -q "imagefolder test" "$work/out" || fail "no result: $(cat "$work/out")" ;;
  disk_full_prints_epoch)
    # Issue 21: when the checkpoint write fails (a full disk), the epoch's line is still printed
    # (metrics.csv holds it), before the one-line error.
    train_ok --epochs 1 --output-dir "$work/run"
    size_kib=$(( $(stat -c %s "$work/run/last.pth") / 1024 / 2 ))
    bash -c "trap '' XFSZ; ulimit -f $size_kib; exec \"\$0\" \"\$@\"" \
      "$densenet" train "${tiny[@]}" --epochs 2 --resume "$work/run" > "$work/out" 2>"$work/stderr"
    [ $? -eq 1 ] || fail "the failed write did not end the run with status 1"
    grep -q "^epoch 2/2 .*train loss .* test loss" "$work/out" || fail "no epoch line: $(cat "$work/out")"
    grep -q "could not write a checkpoint" "$work/stderr" || fail "stderr: $(cat "$work/stderr")" ;;
  stem_line)
    # Issue 21: the model line says which stem the input size chose, and that the preset's own
    # (the one torchvision's weights have) is one flag away.
    "$densenet" train --dataset synthetic --input-size 32 --arch densenet121 --block-config 1,1,1,1 \
      --growth-rate 4 --max-train-samples 16 --max-eval-samples 16 --batch-size 16 --epochs 1 \
      --threads 1 --workers 0 --output-dir "$work/run" > "$work/out" 2>"$work/stderr" ||
      fail "train: $(cat "$work/stderr")"
    grep -q "^model: densenet121, .*cifar stem (input 32 <= 32 px; densenet121's own is imagenet, which torchvision's weights have: --stem imagenet keeps it)" "$work/out" ||
      fail "model line: $(grep '^model' "$work/out")"
    "$densenet" train "${tiny[@]}" --epochs 1 --output-dir "$work/d2" | grep -q "^model: densenet-bc-40, .*cifar stem (input 16 <= 32 px)," ||
      fail "the default model line names no stem" ;;
  memory_auto_cgroup)
    # Issue 22: memory: auto chooses within a cgroup's memory limit (here faked through
    # DENSENET_CGROUP_ROOT: cgroup v2's memory.max and memory.current), not MemAvailable.
    mkdir -p "$work/cgroup"
    echo $((64 * 1024 * 1024)) > "$work/cgroup/memory.max"
    echo $((14 * 1024 * 1024)) > "$work/cgroup/memory.current"
    DENSENET_CGROUP_ROOT="$work/cgroup" "$densenet" train "${tiny[@]}" --memory auto --epochs 1 \
      --output-dir "$work/run" > "$work/out" 2>"$work/stderr" || fail "train: $(cat "$work/stderr")"
    grep -q "^memory: auto -> .* of the 40.00 MiB budget" "$work/out" ||
      fail "the budget is not 80% of the cgroup's 50 MiB left: $(grep '^memory' "$work/out")"
    echo $((64 * 1024)) > "$work/cgroup/memory.max"
    echo 0 > "$work/cgroup/memory.current"
    expect "no memory mode fits batch 16 in 51.20 KiB" \
      env DENSENET_CGROUP_ROOT="$work/cgroup" "$densenet" train "${tiny[@]}" --memory auto \
      --epochs 1 --output-dir "$work/run2" ;;
  unreadable_train_images)
    # Trial report: every training image unreadable trained an epoch on nothing and ended
    # "done" (status 0); every val image unreadable said "the evaluation set is empty".
    /usr/bin/python3 - "$work/d" "$work/v" <<'PY' || fail "python"
import os, sys
from PIL import Image
for root, garbage in ((sys.argv[1], "train"), (sys.argv[2], "val")):
    for split in ("train", "val"):
        folder = os.path.join(root, split, "cat")
        os.makedirs(folder)
        for i in range(3):
            path = os.path.join(folder, f"{i}.jpg")
            if split == garbage:
                open(path, "wb").write(b"not a jpeg" * 10)
            else:
                Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(path, "JPEG")
PY
    folder=(--dataset imagefolder --input-size 16 --block-config 2,2 --growth-rate 4 --epochs 2
            --threads 1 --workers 0 --batch-size 1 --force)
    "$densenet" train "${folder[@]}" --data "$work/d" --output-dir "$work/run" >"$work/out" 2>"$work/stderr"
    status=$?
    [ $status -eq 1 ] || fail "status $status, not 1: $(cat "$work/out" "$work/stderr")"
    [ "$(grep -vc '^densenet: warning: skipping an image' "$work/stderr")" -eq 1 ] ||
      fail "not one error line: $(cat "$work/stderr")"
    grep -q "error: epoch 1 had no readable training image: 3 were skipped as unreadable" "$work/stderr" ||
      fail "stderr: $(cat "$work/stderr")"
    grep -q "^done" "$work/out" && fail "done: $(cat "$work/out")"
    [ ! -e "$work/run/best.pth" ] || fail "a best.pth of an epoch that trained on nothing"
    "$densenet" train "${folder[@]}" --data "$work/v" --output-dir "$work/run2" >"$work/out" 2>"$work/stderr"
    status=$?
    [ $status -eq 1 ] || fail "val: status $status, not 1: $(cat "$work/stderr")"
    grep -q "error: the evaluation set has 3 images, all unreadable (skipped" "$work/stderr" ||
      fail "val stderr: $(cat "$work/stderr")"
    echo "ok" ;;
  diverged_loss_scale)
    # Trial report: under dynamic loss scaling a run whose every step was skipped ended "done".
    diverge=(--amp bf16 --loss-scale dynamic --lr 1e30 --output-dir "$work/run")
    expect "epoch [12]: all 4 optimiser steps were skipped for inf/NaN gradients \(loss scale now [0-9.e+-]+\): the run has diverged; nothing was saved; .* Lower lr, or add warmup-epochs or clip$" \
      "$densenet" train "${tiny[@]}" --epochs 2 "${diverge[@]}"
    [ "$(grep -c '^2,' "$work/run/metrics.csv")" -eq 0 ] || fail "epoch 2 logged: $(cat "$work/run/metrics.csv")"
    # A loss scale below float's smallest normal has underflowed: stopped at once.
    expect "the loss scale fell to [0-9.e+-]+ \(below float's smallest normal, 1.17549e-38\) at epoch 1, step [0-9]+ " \
      "$densenet" train "${tiny[@]}" --epochs 1 "${diverge[@]}" --loss-scale-init 3e-38 --force
    # The advice leaves out what the run has on: clip.
    expect "\. Lower lr, or add warmup-epochs$" \
      "$densenet" train "${tiny[@]}" --epochs 2 --lr 1e30 --clip 1 --output-dir "$work/run3" ;;
  usage_mistakes)
    # Trial report: each is a usage mistake, status 2, one line naming the key or the file.
    EXPECTED_STATUS=2 expect "config key 'memory-budget': expected a size .*got '16EiB'" \
      "$densenet" train "${tiny[@]}" --memory auto --memory-budget 16EiB --output-dir "$work/r"
    EXPECTED_STATUS=2 expect "config key 'memory-budget': expected a size .*got '8EiB'" \
      "$densenet" train "${tiny[@]}" --memory auto --memory-budget 8EiB --output-dir "$work/r"
    for key in lr weight-decay clip; do
      EXPECTED_STATUS=2 expect "config key '$key' must be in .*, got 1e\+300 \(see" \
        "$densenet" train "${tiny[@]}" --$key 1e300 --output-dir "$work/r"
    done
    EXPECTED_STATUS=2 expect "config key 'lighting' must be in \[0, 1\], got 1e\+300" \
      "$densenet" train --dataset imagefolder --data "$work" --lighting 1e300 --output-dir "$work/r"
    printf '? [a]\n: 1\n' > "$work/complex.yaml"
    EXPECTED_STATUS=2 expect "complex.yaml': a config key must be a name such as 'epochs', got a list" \
      "$densenet" train --config "$work/complex.yaml"
    EXPECTED_STATUS=2 expect "'warmup-epochs' must be 0 with lr-type triangle.* \(see 'densenet train --help'\)$" \
      "$densenet" train "${tiny[@]}" --lr-type triangle --warmup-epochs 0.5 --output-dir "$work/r"
    EXPECTED_STATUS=2 expect "'milestones' must be epochs in \[1, epochs=2\], e.g. 30,60" \
      "$densenet" train "${tiny[@]}" --epochs 2 --lr-type multistep --milestones 0.5,0.75 --output-dir "$work/r"
    printf 'block-config: []\n' > "$work/empty.yaml"
    EXPECTED_STATUS=2 expect "empty.yaml: config key 'block-config': expected a non-empty list" \
      "$densenet" train --config "$work/empty.yaml" ;;
  help_texts)
    # Trial report: the help's defaults and descriptions.
    "$densenet" train --help > "$work/help" 2>&1 || fail "help"
    tr -s ' \n' ' ' < "$work/help" > "$work/flat"
    for text in "dist-timeout \+ 15 s \[default: 600\]" "best_ema.pth" "events.out.tfevents" \
                "0: none; last.pth is written every epoch" "step divides it by 10 every 30 epochs" \
                "e.g. 30,60 \(default: 50% and 75% of epochs\)"; do
      grep -Eq -- "$text" "$work/flat" || fail "help lacks '$text'"
    done
    grep -q "0.5, 0.75 of epochs" "$work/flat" && fail "help still says 0.5, 0.75 of epochs"
    echo "ok" ;;
  folder_subset)
    # Trial report: max-train-samples took an image folder's first files, all of one class.
    /usr/bin/python3 - "$work/folder" <<'PY' || fail "python"
import os, sys
from PIL import Image
for split in ("train", "val"):
    for name in ("ant", "bee"):
        os.makedirs(os.path.join(sys.argv[1], split, name))
        for i in range(4):
            Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(os.path.join(sys.argv[1], split, name, f"{i}.png"))
PY
    # The bee images unreadable: the first 4 files (all ants) would train; evenly spaced ones
    # take 2 bees too, whose skip warnings say so.
    for i in 0 1 2 3; do echo garbage > "$work/folder/train/bee/$i.png"; done
    "$densenet" train --dataset imagefolder --data "$work/folder" --input-size 16 "${tiny_model[@]}" \
      --max-train-samples 4 --batch-size 2 --epochs 1 --output-dir "$work/run" >"$work/out" 2>"$work/stderr" ||
      fail "train: $(cat "$work/stderr")"
    grep -q "^data: imagefolder train (8 images, 2 classes, .*), 4 evenly spaced" "$work/out" ||
      fail "data line: $(grep '^data' "$work/out")"
    [ "$(grep -c 'skipping an image: .*bee' "$work/stderr")" -eq 2 ] ||
      fail "not 2 bee images in the subset: $(cat "$work/stderr")"
    echo "ok" ;;
  *) fail "unknown case" ;;
esac

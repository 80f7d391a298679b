#!/bin/bash
# usage: dist_cli.sh CASE DENSENET WORKDIR PYTHON
# `densenet train` on two ranks over loopback Gloo (the built-in launcher, or two processes
# started by hand with torchrun's variables): equal to one process, failures, resumption, exact evaluation.
# Runs are tiny (synthetic 16x16 images, one thread per rank).
set -u
source "$(dirname "$0")/dist_case.sh"

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# expect STATUS REGEX COMMAND...: COMMAND must exit with STATUS and write one line, an error
# matching REGEX, to its standard error (no warnings around it).
expect() { expect_failure "$@"; }

# rank_pid LAUNCHER RANK: the process id of the launcher's child with that RANK.
rank_pid() {
  local child
  for child in $(pgrep -P "$1"); do
    tr '\0' '\n' < /proc/$child/environ | grep -qx "RANK=$2" && echo "$child"
  done
}

# wait_for REGEX FILE: until FILE has a line matching REGEX (60 s at most).
wait_for() {
  for _ in $(seq 1 1200); do grep -Eq -- "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done
  fail "no '$1' in $2 after 60 s: $(cat "$2")"
}

# Starts a run in the background, interrupts it with SIGINT after its 5th step and checks
# that it stopped there with a checkpoint (exit 130). Arguments: the run's flags.
interrupted_run() {
  "$densenet" train "$@" > "$work/interrupted.out" 2>&1 &
  local pid=$!
  wait_for 'step 5/' "$work/interrupted.out"
  kill -INT $pid
  wait $pid
  local status=$?
  [ "$status" -eq 130 ] || fail "status $status after SIGINT, not 130: $(cat "$work/interrupted.out")"
  grep -q "stopped at epoch 1, step" "$work/interrupted.out" ||
    fail "the run was not stopped in its first epoch: $(cat "$work/interrupted.out")"
}

case $case_name in
  matches_single_process)
    # Two ranks of 8 images each equal one process with the batch of 16 in two splits (batch
    # statistics are per split as they are per rank); the replicas stay bit-identical.
    common=("${tiny[@]}" --max-train-samples 64 --epochs 2)
    "$densenet" train "${common[@]}" --nproc-per-node 2 --dist-bucket-size 4KiB \
      --output-dir "$work/two" > "$work/two.out" 2>&1 || fail "2 ranks: $(cat "$work/two.out")"
    "$densenet" train "${common[@]}" --num-batch-splits 2 --output-dir "$work/one" \
      > "$work/one.out" 2>&1 || fail "1 process: $(cat "$work/one.out")"
    cat "$work/two.out"
    grep -Eq "data-parallel: 2 ranks \(gloo\), 8 images per rank per step, [0-9]+ gradient buckets" \
      "$work/two.out" || fail "no data-parallel summary with several buckets"
    grep -q "data-parallel: the 2 ranks' replicas were bit-identical (.* tensors) at all 2 checkpoints" \
      "$work/two.out" || fail "replicas not reported bit-identical"
    grep -q "communication wait" "$work/two.out" || fail "no communication wait reported"
    [ "$(grep -c '^epoch 1/2  train' "$work/two.out")" -eq 1 ] || fail "not rank 0 alone printing"
    [ "$(grep -c '^densenet train: run directory' "$work/two.out")" -eq 1 ] || fail "rank 1 printed"
    # The same files (a TensorBoard event file's name holds its process id): rank 0's alone
    # (none in a build without TensorBoard).
    listing() { (cd "$1" && ls | sed 's/^events\.out\.tfevents\..*/events.out.tfevents.*/' | sort); }
    [ "$(listing "$work/two")" = "$(listing "$work/one")" ] ||
      fail "run directories differ: $(ls "$work/two") / $(ls "$work/one")"
    [ "$(ls "$work/two" | grep -c '^events\.out\.tfevents\.')" -le 1 ] ||
      fail "not one TensorBoard event file: $(ls "$work/two")"
    same_as_one_process "$work/two" "$work/one" "2 ranks against 1 process after 8 steps"
    echo "ok" ;;
  channels_last)
    # NHWC weights (memory naive) go through the broadcast, the gradient buckets and the
    # replica check, whose flat buffers are row-major: 2 ranks equal 1 process in 2 splits.
    common=("${tiny[@]}" --max-train-samples 64 --epochs 2 --memory naive --channels-last)
    "$densenet" train "${common[@]}" --nproc-per-node 2 --output-dir "$work/two" \
      > "$work/two.out" 2>&1 || fail "2 ranks: $(cat "$work/two.out")"
    "$densenet" train "${common[@]}" --num-batch-splits 2 --output-dir "$work/one" \
      > "$work/one.out" 2>&1 || fail "1 process: $(cat "$work/one.out")"
    grep -q "data-parallel: the 2 ranks' replicas were bit-identical" "$work/two.out" ||
      fail "replicas not reported bit-identical: $(cat "$work/two.out")"
    same_as_one_process "$work/two" "$work/one" "channels-last, 2 ranks against 1 process"
    ;;
  one_error_line)
    # A mistake every rank finds is one line, not one per rank and one of the launcher's.
    stderr=$("$densenet" train "${tiny[@]}" --max-train-samples 8 --nproc-per-node 2 \
      --output-dir "$work/run" 2>&1 >/dev/null)
    status=$?
    [ "$status" -eq 1 ] || fail "status $status, not 1: $stderr"
    [ "$stderr" = "densenet train: error: batch-size 16 is larger than the training set (8 images)" ] ||
      fail "stderr is not the one error line: $stderr"
    # The launcher killed outright: its ranks (SIGTERM from the kernel, their stderr pipe now
    # without a reader) still write a checkpoint and say how to resume, and the run resumes.
    "$densenet" train "${tiny[@]}" --max-train-samples 1024 --epochs 2 --nproc-per-node 2 \
      --output-dir "$work/killed" > "$work/killed.out" 2>&1 &
    launcher=$!
    wait_for 'step 5/' "$work/killed.out"
    kill -KILL $launcher
    wait $launcher 2>/dev/null
    for _ in $(seq 1 600); do grep -q "densenet train --resume" "$work/killed.out" && break; sleep 0.05; done
    grep -q "densenet train --resume $work/killed" "$work/killed.out" ||
      fail "no resume hint after the launcher was killed: $(cat "$work/killed.out")"
    for _ in $(seq 1 100); do pgrep -f "output-dir $work/killed" >/dev/null || break; sleep 0.1; done
    "$densenet" train --nproc-per-node 2 --resume "$work/killed" > "$work/resumed.out" 2>&1 ||
      fail "resume: $(cat "$work/resumed.out")"
    grep -q "^epoch 2/2  train" "$work/resumed.out" || fail "resumed run did not finish"
    echo "ok" ;;
  sync_bn)
    # With sync-bn, two ranks of 8 images each equal one process with the whole batch of 16 and
    # no splits (batch statistics of the global batch), in every memory mode, running
    # statistics included.
    for memory in naive efficient minimal; do
      common=("${tiny[@]}" --max-train-samples 64 --epochs 2 --memory $memory)
      "$densenet" train "${common[@]}" --nproc-per-node 2 --sync-bn \
        --output-dir "$work/two-$memory" > "$work/two-$memory.out" 2>&1 ||
        fail "2 ranks ($memory): $(cat "$work/two-$memory.out")"
      "$densenet" train "${common[@]}" --output-dir "$work/one-$memory" \
        > "$work/one-$memory.out" 2>&1 || fail "1 process ($memory): $(cat "$work/one-$memory.out")"
      grep -q "sync-bn (batch statistics of the global batch)" "$work/two-$memory.out" ||
        fail "no sync-bn in the data-parallel summary: $(cat "$work/two-$memory.out")"
      grep -q "replicas were bit-identical" "$work/two-$memory.out" ||
        fail "replicas not reported bit-identical ($memory)"
      "$python" - "$work/two-$memory/last.pth" "$work/one-$memory/last.pth" <<'PY' ||
import sys, torch
two = torch.load(sys.argv[1], weights_only=True)
one = torch.load(sys.argv[2], weights_only=True)
assert two["global_step"] == one["global_step"] == 8, (two["global_step"], one["global_step"])
worst, where = 0.0, ""
for name, tensor in one["model"].items():
    diff = (two["model"][name].double() - tensor.double()).abs().max().item()
    if diff > worst:
        worst, where = diff, name
print("largest difference after 8 steps (parameters and running statistics): %.3g (%s)" % (worst, where))
sys.exit(0 if worst <= 1e-5 else 1)
PY
        fail "sync-bn ($memory) differs from one process with the whole batch"
      # Without sync-bn the same two ranks differ from the whole batch: the test can fail.
      if [ $memory = efficient ]; then
        "$densenet" train "${common[@]}" --nproc-per-node 2 --output-dir "$work/two-nosync" \
          > "$work/two-nosync.out" 2>&1 || fail "2 ranks without sync-bn: $(cat "$work/two-nosync.out")"
        "$python" - "$work/two-nosync/last.pth" "$work/one-$memory/last.pth" <<'PY' ||
import sys, torch
two = torch.load(sys.argv[1], weights_only=True)["model"]
one = torch.load(sys.argv[2], weights_only=True)["model"]
worst = max((two[k].double() - v.double()).abs().max().item() for k, v in one.items())
print("without sync-bn: largest difference %.3g" % worst)
sys.exit(0 if worst > 1e-4 else 1)
PY
          fail "two ranks without sync-bn match the whole batch: the comparison cannot fail"
      fi
    done
    echo "ok" ;;
  unreadable_batch)
    # An image folder where half the training images are corrupt: some step leaves a rank with
    # no readable image. The ranks must skip that step together (not desynchronise and time
    # out). (Not all but the first: then every step was skipped, and an epoch that trained on
    # nothing now ends the run.)
    "$python" - "$work/folder" <<'PY' || fail "could not write the image folder"
import os, sys
from PIL import Image
root = sys.argv[1]
for split, count in (("train", 8), ("val", 2)):
    for label in ("a", "b"):
        os.makedirs(os.path.join(root, split, label))
        for i in range(count):
            path = os.path.join(root, split, label, "%d.png" % i)
            if split == "train" and i % 2 == 1:
                with open(path, "wb") as f:
                    f.write(b"not a png")
            else:
                Image.new("RGB", (16, 16), (40 * i, 200 if label == "a" else 30, 90)).save(path)
PY
    "$densenet" train --dataset imagefolder --data "$work/folder" --input-size 16 --batch-size 4 \
      --arch densenet-bc-40 --block-config 2,2 --growth-rate 4 --threads 1 --workers 0 \
      --epochs 2 --dist-timeout 20 --nproc-per-node 2 --output-dir "$work/run" \
      > "$work/run.out" 2>&1 || fail "the run failed: $(cat "$work/run.out")"
    cat "$work/run.out"
    grep -q "skipped on every rank: a rank had no readable image" "$work/run.out" ||
      fail "no step was skipped: the folder does not exercise the case"
    grep -q "^epoch 2/2  train" "$work/run.out" || fail "the run did not finish"
    echo "ok" ;;
  torchrun)
    # torchrun's elastic agent serves the store (TORCHELASTIC_USE_AGENT_STORE=True): the ranks
    # join it as clients and train exactly as the built-in launcher's ranks do. Debian 12's
    # torchrun (PyTorch 1.13) fails on Python 3.11 with its default --redirects/--tee 0 (Python
    # 3.11 no longer iterates the flag value 0, so Std.from_str("0") is None); 2 (stderr) parses.
    common=("${tiny[@]}" --max-train-samples 64 --epochs 2)
    port=$(free_port)
    torchrun --nproc_per_node 2 --master_port "$port" --redirects 2 --tee 2 \
      --log_dir "$work/torchrun-logs" --no_python "$densenet" train "${common[@]}" \
      --output-dir "$work/torchrun" > "$work/torchrun.out" 2>&1 ||
      fail "torchrun: $(cat "$work/torchrun.out")"
    "$densenet" train "${common[@]}" --nproc-per-node 2 --output-dir "$work/launcher" \
      > "$work/launcher.out" 2>&1 || fail "launcher: $(cat "$work/launcher.out")"
    grep -q "data-parallel: 2 ranks (gloo)" "$work/torchrun.out" ||
      fail "no data-parallel summary under torchrun: $(cat "$work/torchrun.out")"
    "$python" - "$work/torchrun/last.pth" "$work/launcher/last.pth" <<'PY' ||
import sys, torch
a = torch.load(sys.argv[1], weights_only=True)
b = torch.load(sys.argv[2], weights_only=True)
assert a["global_step"] == b["global_step"] == 8, (a["global_step"], b["global_step"])
for name, tensor in b["model"].items():
    assert torch.equal(a["model"][name], tensor), name
print("torchrun and the built-in launcher: bit-identical after 8 steps")
PY
      fail "torchrun's run differs from the launcher's"
    echo "ok" ;;
  killed_rank)
    # Two processes started by hand: rank 1 killed, rank 0 must give up by itself.
    slow=("${tiny[@]}" --max-train-samples 1024 --epochs 2 --dist-timeout 5)
    port=$(free_port)
    env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$densenet" train "${slow[@]}" --output-dir "$work/run" > "$work/rank0.out" 2>&1 &
    rank0=$!
    env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      "$densenet" train "${slow[@]}" --output-dir "$work/run" > "$work/rank1.out" 2>&1 &
    rank1=$!
    wait_for '^epoch 1/2  train' "$work/rank0.out"
    wait_for '^epoch 2/2 step 3/' "$work/rank0.out"
    cp "$work/run/last.pth" "$work/before.pth"
    kill -KILL $rank1
    start=$(date +%s)
    wait $rank0
    status=$?
    took=$(( $(date +%s) - start ))
    cat "$work/rank0.out"
    [ "$status" -eq 1 ] || fail "rank 0 exited with $status, not 1"
    [ "$took" -le 20 ] || fail "rank 0 took $took s to give up (dist-timeout 5 s)"
    grep -Eq "error: rank 0: .* failed: lost rank 1 " "$work/rank0.out" || fail "rank 1 not named"
    cmp -s "$work/run/last.pth" "$work/before.pth" || fail "last.pth changed"
    # Through the launcher: its status is the killed rank's (128 + 9), and it says which.
    "$densenet" train "${slow[@]}" --nproc-per-node 2 --output-dir "$work/run2" \
      > "$work/launcher.out" 2>&1 &
    launcher=$!
    wait_for 'step 3/' "$work/launcher.out"
    victim=$(rank_pid $launcher 1)
    [ -n "$victim" ] || fail "no rank 1 among the launcher's children"
    kill -KILL "$victim"
    wait $launcher
    status=$?
    cat "$work/launcher.out"
    [ "$status" -eq 137 ] || fail "the launcher exited with $status, not 137"
    grep -q "rank 1 (pid $victim) was killed by signal 9" "$work/launcher.out" ||
      fail "the launcher did not name rank 1"
    echo "ok" ;;
  amp_loss_scale)
    # bf16 autocast with a dynamic loss scale: the ranks unscale the same all-reduced gradients,
    # so they take or skip the same steps, their scales grow alike (every 2 clean steps: 4
    # growths in 8 steps) and their replicas stay bit-identical (checked at every checkpoint).
    "$densenet" train "${tiny[@]}" --max-train-samples 64 --epochs 2 --nproc-per-node 2 \
      --amp bf16 --loss-scale dynamic --loss-scale-init 1024 --loss-scale-growth-interval 2 \
      --output-dir "$work/run" > "$work/run.out" 2>&1 || fail "$(cat "$work/run.out")"
    cat "$work/run.out"
    grep -q "replicas were bit-identical (.* tensors) at all 2 checkpoints" "$work/run.out" ||
      fail "replicas not reported bit-identical"
    grep -q "^epoch 2/2  train .* loss scale 16384, 0 steps skipped" "$work/run.out" ||
      fail "the loss scale did not grow as expected"
    echo "ok" ;;
  resume_exact)
    # Interrupted at a step and resumed, on 2 ranks: bit-identical to the run never stopped.
    common=("${tiny[@]}" --max-train-samples 512 --epochs 2 --nproc-per-node 2)
    "$densenet" train "${common[@]}" --output-dir "$work/full" > "$work/full.out" 2>&1 ||
      fail "full run: $(cat "$work/full.out")"
    interrupted_run "${common[@]}" --output-dir "$work/part"
    grep -q "densenet train --resume $work/part" "$work/interrupted.out" || fail "no resume hint"
    "$densenet" train --nproc-per-node 2 --resume "$work/part" > "$work/resumed.out" 2>&1 ||
      fail "resume: $(cat "$work/resumed.out")"
    grep -q "^epoch 2/2  train" "$work/resumed.out" || fail "resumed run did not finish"
    "$python" - "$work/full/last.pth" "$work/part/last.pth" <<'PY' || fail "not bit-identical"
import sys, torch
full = torch.load(sys.argv[1], weights_only=True)
part = torch.load(sys.argv[2], weights_only=True)
assert full["global_step"] == part["global_step"] == 64, (full["global_step"], part["global_step"])
for name, tensor in full["model"].items():
    assert torch.equal(tensor, part["model"][name]), name
for index, state in full["optimizer"]["state"].items():
    for key, value in state.items():
        assert torch.equal(value, part["optimizer"]["state"][index][key]), (index, key)
print("model and optimizer state bit-identical over", len(full["model"]), "tensors")
PY
    # Extended by an epoch: the earlier epochs' rows (communication wait included) stay as they
    # were written.
    head -3 "$work/full/metrics.csv" > "$work/before.csv"
    "$densenet" train --nproc-per-node 2 --resume "$work/full" --epochs 3 > "$work/extended.out" 2>&1 ||
      fail "extend: $(cat "$work/extended.out")"
    [ "$(head -3 "$work/full/metrics.csv")" = "$(cat "$work/before.csv")" ] ||
      fail "earlier metrics rows changed on resume: $(cat "$work/before.csv") -> $(head -3 "$work/full/metrics.csv")"
    "$python" - "$work/full/metrics.csv" <<'PY' || fail "no communication wait in the metrics"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 3 and all(float(r["comm_wait_share"]) > 0 for r in rows), rows
PY
    echo "ok" ;;
  resume_other_world_size)
    # A mid-epoch checkpoint of 2 ranks resumed on 1: the epoch restarts, and it says so.
    interrupted_run "${tiny[@]}" --max-train-samples 512 --epochs 1 --nproc-per-node 2 \
      --output-dir "$work/run"
    "$densenet" train --resume "$work/run" > "$work/resumed.out" 2>&1 ||
      fail "resume: $(cat "$work/resumed.out")"
    grep -q "the checkpoint was written by 2 ranks, this run has 1: epoch 1 restarts at its first step" \
      "$work/resumed.out" || fail "no restart message: $(cat "$work/resumed.out")"
    grep -q "^epoch 1/1  train" "$work/resumed.out" || fail "resumed run did not finish"
    echo "ok" ;;
  bad_env)
    run=(train "${tiny[@]}" --max-train-samples 64 --output-dir "$work/run")
    expect 2 "environment variable RANK=2 is outside \[0, WORLD_SIZE=2\)" \
      env WORLD_SIZE=2 RANK=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$densenet" "${run[@]}"
    expect 2 "environment variable WORLD_SIZE='two' is not a whole number" \
      env WORLD_SIZE=two RANK=0 "$densenet" "${run[@]}"
    expect 2 "environment variable MASTER_ADDR is not set" \
      env -u MASTER_ADDR WORLD_SIZE=2 RANK=0 "$densenet" "${run[@]}"
    expect 2 "environment variable RANK=1 is set but WORLD_SIZE is not" \
      env -u WORLD_SIZE RANK=1 "$densenet" "${run[@]}"
    expect 2 "batch-size 16 is not divisible by the world size 3" \
      "$densenet" "${run[@]}" --nproc-per-node 3
    expect 2 "batch-size 16 is not divisible by the world size 3" \
      env WORLD_SIZE=3 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$densenet" "${run[@]}"
    expect 2 "--nnodes needs --nproc-per-node" "$densenet" "${run[@]}" --nnodes 2
    expect 2 "--node-rank 2 is outside \[0, --nnodes=2\)" \
      "$densenet" "${run[@]}" --nproc-per-node 2 --nnodes 2 --node-rank 2
    # Debian's CPU LibTorch has no NCCL; the CUDA build refuses it on device cpu.
    expect 2 "dist-backend nccl \(CUDA\) is not supported|dist-backend nccl reduces CUDA tensors" \
      "$densenet" "${run[@]}" --nproc-per-node 2 --dist-backend nccl
    expect 2 "config key 'dist-timeout' must be in \(0, 1e\+07\] seconds" \
      "$densenet" "${run[@]}" --nproc-per-node 2 --dist-timeout 0
    expect 2 "use either torchrun or --nproc-per-node" \
      env WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$densenet" "${run[@]}" \
      --nproc-per-node 2
    # A host that cannot be resolved, or an interface this machine does not have: one line, at
    # once (the store would retry the name until dist-timeout runs out, warning twice a second).
    expect 2 "--master-addr: the host 'nonexistent.invalid' cannot be resolved \(.*\)" \
      "$densenet" "${run[@]}" --nproc-per-node 1 --nnodes 2 --master-addr nonexistent.invalid \
      --dist-timeout 3
    expect 2 "environment variable MASTER_ADDR: the host 'nonexistent.invalid' cannot be resolved" \
      env WORLD_SIZE=2 RANK=1 MASTER_ADDR=nonexistent.invalid MASTER_PORT=29500 "$densenet" \
      "${run[@]}" --dist-timeout 3
    expect 2 "environment variable MASTER_ADDR: the host 'nonexistent.invalid' cannot be resolved" \
      env WORLD_SIZE=2 RANK=0 MASTER_ADDR=nonexistent.invalid MASTER_PORT=29500 "$densenet" \
      "${run[@]}" --dist-timeout 3
    expect 2 "config key 'dist-ifname': 'nosuchif0' is not a network interface of this machine" \
      "$densenet" "${run[@]}" --nproc-per-node 2 --dist-ifname nosuchif0
    expect 2 "environment variable GLOO_SOCKET_IFNAME: 'nosuchif0' is not a network interface" \
      env GLOO_SOCKET_IFNAME=lo,nosuchif0 "$densenet" "${run[@]}" --nproc-per-node 2
    expect 2 "config key 'dist-ifname' must be one network interface name" \
      "$densenet" "${run[@]}" --nproc-per-node 2 --dist-ifname eth0,eth1
    [ ! -e "$work/run" ] || fail "a refused run created its directory"
    echo "ok" ;;
  stopped_rank)
    # A rank stopped with SIGSTOP neither dies nor answers: the other one's collective times
    # out, it names the stopped rank (whose heartbeat stopped, or whose store does not answer:
    # rank 0 hosts it) and exits, and the launcher ends the stopped one (SIGTERM and SIGCONT,
    # SIGKILL 5 s later). The whole run must end within dist-timeout + 15 s, the bound that
    # dist-timeout's help states (before, 30 s more for the SIGKILL, and a stopped store host
    # never).
    slow=("${tiny[@]}" --max-train-samples 4096 --epochs 2 --dist-timeout 5)
    for victim_rank in 1 0; do
      out=$work/stopped$victim_rank.out
      "$densenet" train "${slow[@]}" --nproc-per-node 2 --output-dir "$work/run$victim_rank" \
        > "$out" 2>&1 &
      launcher=$!
      wait_for 'step 3/' "$out"
      victim=$(rank_pid $launcher $victim_rank)
      [ -n "$victim" ] || fail "no rank $victim_rank among the launcher's children"
      kill -STOP "$victim"
      start=$(date +%s)
      wait $launcher
      status=$?
      took=$(( $(date +%s) - start ))
      cat "$out"
      echo "rank $victim_rank stopped: the run ended $took s later (dist-timeout 5 s)"
      [ "$status" -eq 1 ] || fail "the launcher exited with $status, not 1"
      [ "$took" -le 20 ] || fail "the run took $took s to end, more than dist-timeout 5 s + 15 s"
      ! kill -0 "$victim" 2>/dev/null || fail "the stopped rank $victim_rank is still there"
      if [ $victim_rank = 1 ]; then
        lost="error: rank 0: .* failed: lost rank 1 \(dist-timeout 5 s\)"
      else
        lost="error: rank 1: .* failed: lost rank 0 \(the host of the rendezvous store\)"
      fi
      grep -Eq "$lost" "$out" || fail "the stopped rank $victim_rank is not named: no '$lost'"
      [ "$(grep -c 'error' "$out")" -eq 1 ] || fail "not one error line"
    done
    echo "ok" ;;
  exact_eval)
    # 33 evaluation images over 2 ranks (17 + 16): the same counts and loss as one process.
    "$densenet" train "${tiny[@]}" --max-train-samples 64 --epochs 1 --output-dir "$work/run" \
      > "$work/train.out" 2>&1 || fail "train: $(cat "$work/train.out")"
    "$densenet" train --resume "$work/run" --test-only > "$work/one.out" 2>&1 ||
      fail "1 process: $(cat "$work/one.out")"
    "$densenet" train --resume "$work/run" --test-only --nproc-per-node 2 > "$work/two.out" 2>&1 ||
      fail "2 ranks: $(cat "$work/two.out")"
    one=$(grep '^test: ' "$work/one.out")
    two=$(grep '^test: ' "$work/two.out")
    echo "1 process: $one"
    echo "2 ranks:   $two"
    [ "$(grep -c '^test: ' "$work/two.out")" -eq 1 ] || fail "not rank 0 alone printing"
    printf '%s\n' "$two" | grep -q "(33 images" || fail "not 33 images: $two"
    "$python" - "$one" "$two" <<'PY' || fail "results differ"
import re, sys
pattern = r"loss ([0-9.]+)  top-1 ([0-9.]+)%  top-5 ([0-9.]+)%  \((\d+) images"
one, two = (re.search(pattern, line).groups() for line in sys.argv[1:])
assert one[1:] == two[1:], ("top-1, top-5 or image count differ", one, two)
# Printed to 1e-6: losses that agree to 5e-7 print at most one unit of the last place apart.
assert abs(float(one[0]) - float(two[0])) <= 1.5e-6, ("losses differ", one[0], two[0])
PY
    echo "ok" ;;
  gpus)
    # --gpus and NCCL's refusals, each one line with exit 2 before any rank starts, in either
    # build: Debian's CPU LibTorch has no NCCL; the CUDA build (pip's LibTorch 2.11) has it but,
    # on a machine without a GPU, no device to run it on.
    run=(train "${tiny[@]}" --max-train-samples 64 --output-dir "$work/run")
    expect 2 "--gpus '0,,1': '' is not a GPU index: give GPU indices separated by commas" \
      "$densenet" "${run[@]}" --gpus 0,,1
    expect 2 "--gpus '1,1': GPU 1 is listed twice" "$densenet" "${run[@]}" --gpus 1,1
    expect 2 "--gpus 0,1 starts 2 ranks, --nproc-per-node 3: give one of them" \
      "$densenet" "${run[@]}" --gpus 0,1 --nproc-per-node 3
    expect 2 "--gpus runs rank r on the r-th listed GPU \(device cuda\), and device is 'cpu'" \
      "$densenet" "${run[@]}" --gpus 0 --device cpu
    expect 2 "use either torchrun or --gpus" \
      env WORLD_SIZE=2 RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 "$densenet" "${run[@]}" \
      --gpus 0,1
    expect 2 "dist-backend gloo here reduces CPU tensors: use device cpu" \
      "$densenet" "${run[@]}" --gpus 0,1 --dist-backend gloo
    # The build's own refusal: no NCCL (Debian), no such GPU (the CUDA build).
    no_nccl="dist-backend nccl \(CUDA\) is not supported by this build: its LibTorch \([^)]*\) has no ProcessGroupNCCL"
    expect 2 "$no_nccl|--gpus: (no CUDA device is available to this program|GPU 99 is not available)" \
      "$densenet" "${run[@]}" --gpus 99
    expect 2 "$no_nccl|dist-backend nccl reduces CUDA tensors, and device is cpu" \
      "$densenet" "${run[@]}" --nproc-per-node 2 --dist-backend nccl
    expect 2 "$no_nccl|device cuda:1: the 2 ranks of this machine would share that GPU" \
      "$densenet" "${run[@]}" --nproc-per-node 2 --device cuda:1
    expect 2 "$no_nccl|device cuda: 8 ranks on this machine compute on cuda:0 to cuda:7, but [0-9]+ CUDA devices? (is|are) visible" \
      "$densenet" "${run[@]}" --nproc-per-node 8 --device cuda
    [ ! -e "$work/run" ] || fail "a refused run wrote $work/run"
    echo "ok" ;;
  *) fail "unknown case" ;;
esac

#!/bin/bash
# usage: two_machines.sh CASE DENSENET WORKDIR PYTHON
# `densenet train` on two machines over a real network: two network namespaces joined by a veth
# pair, 10.77.0.1 (node 0, rank 0 and the store) and 10.77.0.2 (node 1), one launcher each,
# started with `ip netns exec`. Node 0 names its interface with dist-ifname, node 1 with
# GLOO_SOCKET_IFNAME. Cases: equal to one process; a network partition (the link taken down in
# node 1) ends both within dist-timeout + 15 s, each naming the other, and leaves the last
# checkpoint intact and resumable. Needs root and network namespaces (iproute2); skips (77)
# without them.
set -u
source "$(dirname "$0")/dist_case.sh"
skip() { echo "SKIP ($case_name): $*"; exit 77; }

# wait_for REGEX FILE: until FILE has a line matching REGEX (60 s at most).
wait_for() {
  for _ in $(seq 1 1200); do grep -Eq -- "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done
  fail "no '$1' in $2 after 60 s: $(cat "$2")"
}

[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
command -v ip > /dev/null || skip "no 'ip' command (Debian's iproute2, scripts/setup.sh)"

# The machines: names unique to this run, removed on every exit (with the veth pair in them).
ns=("densenet-$$-0" "densenet-$$-1")
pids=()
cleanup() {
  local pid name
  trap '' INT TERM  # a second signal (timeout sends two) must not cut the cleanup short
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2> /dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null; done
  for name in "${ns[@]}"; do
    [ -e "/run/netns/$name" ] || continue
    for _ in $(seq 1 20); do ip netns del "$name" 2> /dev/null && break; sleep 0.2; done
    [ ! -e "/run/netns/$name" ] || echo "warning: could not remove network namespace $name"
  done
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ip netns add "${ns[0]}" 2> "$work/netns.err" || skip "no network namespaces: $(cat "$work/netns.err")"
ip netns add "${ns[1]}" || fail "ip netns add ${ns[1]}"
ip -n "${ns[0]}" link add veth0 type veth peer name veth1 netns "${ns[1]}" ||
  fail "cannot create the veth pair"
for node in 0 1; do
  ip -n "${ns[$node]}" addr add "10.77.0.$((node + 1))/24" dev "veth$node" || fail "address"
  ip -n "${ns[$node]}" link set "veth$node" up || fail "link up"
  ip -n "${ns[$node]}" link set lo up || fail "loopback up"
done

# node NODE OUTPUT ARGS...: starts node NODE's launcher in the background (its pid in pids).
node() {
  local number=$1 output=$2
  shift 2
  local interface=(--dist-ifname veth0)
  local variables=()
  if [ "$number" -eq 1 ]; then interface=(); variables=(GLOO_SOCKET_IFNAME=veth1); fi
  ip netns exec "${ns[$number]}" env "${variables[@]}" "$densenet" train "$@" "${interface[@]}" \
    --nproc-per-node 1 --nnodes 2 --node-rank "$number" --master-addr 10.77.0.1 \
    --master-port 29500 > "$output" 2>&1 &
  pids+=($!)
}

case $case_name in
  matches_single_process)
    # Two machines of one rank each equal one process with the batch of 16 in two splits.
    common=("${tiny[@]}" --max-train-samples 64 --epochs 2)
    node 0 "$work/node0.out" "${common[@]}" --output-dir "$work/two"
    node 1 "$work/node1.out" "${common[@]}" --output-dir "$work/two-node1"
    wait "${pids[0]}" || fail "node 0: $(cat "$work/node0.out") / node 1: $(cat "$work/node1.out")"
    wait "${pids[1]}" || fail "node 1: $(cat "$work/node1.out")"
    cat "$work/node0.out"
    grep -q "data-parallel: 2 ranks (gloo)" "$work/node0.out" || fail "no data-parallel summary"
    grep -q "replicas were bit-identical" "$work/node0.out" || fail "replicas not bit-identical"
    "$densenet" train "${common[@]}" --num-batch-splits 2 --output-dir "$work/one" \
      > "$work/one.out" 2>&1 || fail "1 process: $(cat "$work/one.out")"
    same_as_one_process "$work/two" "$work/one" "two machines against 1 process after 8 steps"
    echo "ok" ;;
  partition)
    # The link taken down in node 1 in the second epoch: node 0 (rank 0, the store) loses rank
    # 1's heartbeat, node 1 loses the store; both end within dist-timeout + 15 s (before, node 1
    # waited for TCP to give up on the store: 15 minutes and more).
    slow=("${tiny[@]}" --max-train-samples 4096 --epochs 3 --dist-timeout 5)
    node 0 "$work/node0.out" "${slow[@]}" --output-dir "$work/run"
    node 1 "$work/node1.out" "${slow[@]}" --output-dir "$work/run-node1"
    wait_for '^epoch 1/3  train' "$work/node0.out"
    wait_for '^epoch 2/3 step 3/' "$work/node0.out"
    cp "$work/run/last.pth" "$work/before.pth"
    ip -n "${ns[1]}" link set veth1 down || fail "cannot take the link down"
    start=$(date +%s)
    for number in 0 1; do
      wait "${pids[$number]}"
      status[$number]=$?
      took[$number]=$(( $(date +%s) - start ))
    done
    cat "$work/node0.out" "$work/node1.out"
    echo "partition: node 0 ended ${took[0]} s later, node 1 ${took[1]} s (dist-timeout 5 s)"
    for number in 0 1; do
      [ "${status[$number]}" -eq 1 ] || fail "node $number exited with ${status[$number]}, not 1"
      [ "${took[$number]}" -le 20 ] ||
        fail "node $number took ${took[$number]} s to end, more than dist-timeout 5 s + 15 s"
      [ "$(grep -c 'error' "$work/node$number.out")" -eq 1 ] || fail "node $number: not one error line"
    done
    grep -Eq "error: rank 0: .* failed: lost rank 1 \(dist-timeout 5 s\)" "$work/node0.out" ||
      fail "node 0 does not name rank 1"
    grep -Eq "error: rank 1: .* failed: lost rank 0 \(the host of the rendezvous store\)" \
      "$work/node1.out" || fail "node 1 does not name rank 0"
    cmp -s "$work/run/last.pth" "$work/before.pth" || fail "last.pth changed"
    # The link back: the two machines resume from the checkpoint and finish.
    ip -n "${ns[1]}" link set veth1 up || fail "cannot take the link up"
    pids=()
    node 0 "$work/resume0.out" --resume "$work/run"
    # The run's configuration names node 0's interface; dist-ifname may change on resume.
    node 1 "$work/resume1.out" --resume "$work/run" --dist-ifname veth1
    wait "${pids[0]}" || fail "resume, node 0: $(cat "$work/resume0.out") / $(cat "$work/resume1.out")"
    wait "${pids[1]}" || fail "resume, node 1: $(cat "$work/resume1.out")"
    grep -q "^epoch 3/3  train" "$work/resume0.out" || fail "the resumed run did not finish"
    echo "ok" ;;
  *) fail "unknown case" ;;
esac

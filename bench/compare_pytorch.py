#!/usr/bin/python3
"""Runs `densenet bench` and the same training step in PyTorch, measured the same way in the
same run, and prints one table with ratios (ours / PyTorch) for time and memory.

PyTorch implementations (Debian's python3-torch / python3-torchvision):
  pytorch-plain       plain autograd DenseNet, like the original project's non-efficient model
  pytorch-checkpoint  the same with torch.utils.checkpoint around concat-BN-ReLU-conv1 of each
                      layer (the original project's efficient model, torchvision's approach)
  torchvision         torchvision's _DenseBlock/_Transition (memory_efficient False), with the
                      configuration's stem (BC configurations only)
  torchvision-me      the same with memory_efficient=True

Each PyTorch measurement runs in a fresh process, measured as `densenet bench` measures ours.
Memory first, with freed memory returned to the system at once (mmap threshold 64 KiB,
malloc_trim) from the start of the process: warm-up steps, RSS before, the kernel's peak-RSS
mark reset, one step; memory = peak RSS - RSS before. Then time: freed memory kept in the heap
for reuse (no mmap, no trimming, as a caching allocator would), so steps time the computation
rather than page faults; warm-up steps, timed steps. (The other
order fails: blocks the timed steps freed stay in the heap, are handed out again and stay
resident, so RSS would count dead memory; `densenet bench` measures RSS in a child process.)

On CUDA (--device cuda) both sides synchronise the device around each timed step and memory is
the caching allocator's peak allocated bytes above what was allocated before the timed steps
(model, input), as torch.cuda.max_memory_allocated reports it. TF32 and cuDNN autotuning are
left at PyTorch's defaults on both sides unless --cudnn-benchmark is given.

usage: bench/compare_pytorch.py --densenet build/densenet --arch densenet-40 [--batch 64]
                                [--threads 2] [--warmup 1] [--iters 3] [--device cpu|cuda]
                                [--cudnn-benchmark] [--amp none|fp16|bf16] [--json]
"""
import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

# The presets of `densenet info` that matter for the comparison (same options as presets.cpp).
PRESETS = {
    "densenet-40": dict(in_channels=3, num_init_features=24, growth_rate=12, block_config=[12, 12, 12],
                        bn_size=0, compression=1.0, num_classes=10, input_size=32),
    "densenet-bc-100": dict(in_channels=3, num_init_features=24, growth_rate=12, block_config=[16, 16, 16],
                            bn_size=4, compression=0.5, num_classes=10, input_size=32),
    "densenet121": dict(in_channels=3, num_init_features=64, growth_rate=32, block_config=[6, 12, 24, 16],
                        bn_size=4, compression=0.5, num_classes=1000, input_size=224),
}


def rss_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4  # glibc's mallopt parameters


def release_memory():
    """From here on freed memory goes back to the system at once, so RSS tracks live memory."""
    gc.collect()
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_MAX, 65536)  # glibc's default
    libc.mallopt(M_MMAP_THRESHOLD, 64 << 10)
    libc.mallopt(M_TRIM_THRESHOLD, 128 << 10)
    libc.malloc_trim(0)


def config_of(args):
    cfg = dict(PRESETS[args.arch])
    if args.block_config:
        cfg["block_config"] = int_list(args.block_config)
    return cfg


def int_list(text, minimum=1):
    """"6,12,24,16" -> [6, 12, 24, 16]; ValueError (argparse reports it) for anything else."""
    values = [int(item) for item in text.split(",")]
    if not values or min(values) < minimum:
        raise ValueError(text)
    return values


def positive_list(text):
    try:
        return int_list(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected a comma-separated list of positive integers such as 6,12,24,16, got '%s'" % text)


def at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError("expected an integer >= %d, got '%s'" % (minimum, text))
        return value
    return parse


def progress(text):
    """Long runs (minutes per row at large batches) say what they are doing, on stderr."""
    sys.stderr.write("compare_pytorch: %s ...\n" % text)
    sys.stderr.flush()


def build(impl, cfg):
    import torch.nn as nn
    import torch.utils.checkpoint as cp
    import reference_densenet as ref
    if impl in ("pytorch-plain", "pytorch-checkpoint"):
        model = ref.DenseNet(**cfg)
        if impl == "pytorch-checkpoint":
            for module in model.modules():
                if isinstance(module, ref.DenseLayer):
                    module.forward = checkpointed_forward(module, cp)
        return model
    from torchvision.models.densenet import _DenseBlock, _Transition
    assert cfg["bn_size"] > 0, "torchvision has no plain (bn_size 0) layers"
    model = ref.DenseNet(**cfg)
    features = model.features
    channels = cfg["num_init_features"]
    for i, layers in enumerate(cfg["block_config"]):
        features._modules["denseblock%d" % (i + 1)] = _DenseBlock(
            layers, channels, cfg["bn_size"], cfg["growth_rate"], 0.0,
            memory_efficient=(impl == "torchvision-me"))
        channels += layers * cfg["growth_rate"]
        if i != len(cfg["block_config"]) - 1:
            out = int(channels * cfg["compression"])
            features._modules["transition%d" % (i + 1)] = _Transition(channels, out)
            channels = out
    return model


def checkpointed_forward(layer, cp):
    import torch
    import torch.nn.functional as F

    def bottleneck(*inputs):
        return layer.conv1(layer.relu1(layer.norm1(torch.cat(inputs, 1))))

    def forward(features):
        if any(f.requires_grad for f in features):
            out = cp.checkpoint(bottleneck, *features)
        else:
            out = bottleneck(*features)
        if layer.bn_size > 0:
            out = layer.conv2(layer.relu2(layer.norm2(out)))
        if layer.drop_rate > 0:
            out = F.dropout(out, p=layer.drop_rate, training=layer.training)
        return out
    return forward


def worker(args):
    """One PyTorch measurement in this (fresh) process; prints one JSON line."""
    release_memory()  # memory is measured first, before the heap holds any large block
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cuda = args.device == "cuda"
    device = torch.device(args.device)
    if cuda:
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    cfg = config_of(args)
    model = build(args.impl, cfg).to(device)
    model.train()
    x = torch.randn(args.batch, cfg["in_channels"], cfg["input_size"], cfg["input_size"], device=device)
    target = torch.randint(0, cfg["num_classes"], (args.batch,), device=device)

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.amp)

    def autocast():
        # Forward and loss under autocast, backward outside, float32 weights: as `densenet bench
        # --amp` does (torch.autocast's documented training step).
        return torch.autocast(args.device, dtype=dtype, enabled=dtype is not None)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        for p in model.parameters():
            p.grad = None
        start = time.perf_counter()
        with autocast():
            loss = F.cross_entropy(model(x), target)
        sync()
        middle = time.perf_counter()
        loss.backward()
        sync()
        end = time.perf_counter()
        return (middle - start) * 1e3, (end - middle) * 1e3

    def clear_gradients():
        for p in model.parameters():
            p.grad = None

    rss_delta = 0
    if not cuda:
        for _ in range(max(1, args.warmup)):
            step()
        clear_gradients()
        release_memory()
        before = rss_bytes("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        step()
        rss_delta = rss_bytes("VmHWM:") - before
        clear_gradients()
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_MAX, 0)  # timing: freed memory stays in the heap for reuse
        libc.mallopt(M_TRIM_THRESHOLD, -1)
    for _ in range(args.warmup):
        step()
    clear_gradients()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        allocated_before = torch.cuda.memory_allocated()
    forward_ms = backward_ms = 0.0
    for _ in range(args.iters):
        f_ms, b_ms = step()
        forward_ms += f_ms / args.iters
        backward_ms += b_ms / args.iters
    row = dict(impl=args.impl, arch=args.arch, batch=args.batch, threads=args.threads, device=args.device,
               amp=args.amp, forward_ms=forward_ms, backward_ms=backward_ms, rss_delta_bytes=rss_delta,
               torch=torch.__version__)
    if cuda:
        row["peak_bytes"] = torch.cuda.max_memory_allocated() - allocated_before
        row["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(row))


def run_ours(args, batch):
    command = [args.densenet, "bench", "--arch", args.arch, "--memory", args.memory, "--batch", str(batch), "--threads",
               str(args.threads), "--warmup", str(args.warmup), "--iters", str(args.iters), "--json",
               "--device", args.device, "--amp", args.amp] + (["--cudnn-benchmark"] if args.cudnn_benchmark else [])
    if args.block_config:
        command += ["--block-config", args.block_config]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("compare_pytorch: '%s' failed (exit %d): %s" % (
            " ".join(command), result.returncode, result.stderr.strip()))
    out = result.stdout
    rows = []
    for line in out.splitlines():
        row = json.loads(line)
        row["impl"] = "densenet " + row["memory"]
        rows.append(row)
    return rows


def run_pytorch(args, impl, batch):
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--impl", impl, "--arch", args.arch,
               "--batch", str(batch), "--threads", str(args.threads), "--warmup", str(args.warmup),
               "--iters", str(args.iters), "--device", args.device, "--amp", args.amp] + \
        (["--block-config", args.block_config] if args.block_config else []) + \
        (["--cudnn-benchmark"] if args.cudnn_benchmark else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write("%s failed:\n%s\n" % (impl, result.stderr[-2000:]))
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--densenet", default=os.path.join(HERE, "..", "build", "densenet"))
    parser.add_argument("--arch", default="densenet-40", choices=sorted(PRESETS))
    parser.add_argument("--batch", default="64", type=positive_list, help="batch sizes, e.g. 64 or 32,64")
    parser.add_argument("--threads", type=at_least(1), default=2)
    parser.add_argument("--warmup", type=at_least(0), default=1)
    parser.add_argument("--iters", type=at_least(1), default=3)
    parser.add_argument("--block-config", type=positive_list,
                        help="override the preset's layers per block, any number of blocks, e.g. 41,41,41")
    parser.add_argument("--memory", default="naive,efficient,minimal", help="our modes to run")
    parser.add_argument("--impls", help="PyTorch implementations to run (default: all that apply)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune (both sides)")
    parser.add_argument("--amp", default="none", choices=["none", "fp16", "bf16"],
                        help="mixed precision on both sides (autocast, float32 weights)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--json-out", help="also append every row as a JSON line to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The workers and `densenet bench` take the lists as text.
    batches = args.batch
    args.batch = ",".join(str(b) for b in batches)
    if args.block_config:
        args.block_config = ",".join(str(b) for b in args.block_config)
    if args.worker:
        args.batch = batches[0]
        worker(args)
        return

    modes = args.memory.split(",")
    unknown = [m for m in modes if m not in ("naive", "efficient", "minimal")]
    if unknown:
        parser.error("--memory: unknown mode '%s': use naive, efficient, minimal" % unknown[0])
    impls = ["pytorch-plain", "pytorch-checkpoint"]
    if PRESETS[args.arch]["bn_size"] > 0:
        impls += ["torchvision", "torchvision-me"]
    if args.impls:
        known = impls
        impls = args.impls.split(",")
        for impl in impls:
            if impl not in known:
                parser.error("--impls: '%s' does not apply to %s; choose from %s" % (
                    impl, args.arch, ", ".join(known)))
    if not os.access(args.densenet, os.X_OK):
        parser.error("--densenet: '%s' is not an executable; build it or give its path" % args.densenet)
    total = len(batches) * (1 + len(impls))
    done = 0
    for batch in batches:
        done += 1
        progress("[%d/%d] densenet bench, %s, batch %d" % (done, total, args.memory, batch))
        rows = run_ours(args, batch)
        theirs = []
        for impl in impls:
            done += 1
            progress("[%d/%d] %s, batch %d" % (done, total, impl, batch))
            row = run_pytorch(args, impl, batch)
            if row:
                theirs.append(row)
        rows += theirs
        if args.json_out:
            with open(args.json_out, "a") as f:
                for row in rows:
                    f.write(json.dumps(dict(row, batch=batch)) + "\n")
        if args.json:
            for row in rows:
                print(json.dumps(row))
            continue
        cuda = args.device == "cuda"
        # Memory compared: RSS delta on the CPU, the CUDA allocator's peak above the start on a GPU.
        memory_key = "peak_bytes" if cuda else "rss_delta_bytes"
        where = (theirs[0].get("gpu", "CUDA") if theirs else "CUDA") if cuda else "%d threads, CPU" % args.threads
        print("\n%s, batch %d, %s (%s)%s" % (args.arch, batch, where, theirs[0]["torch"] if theirs else "?",
                                           "" if args.amp == "none" else ", amp " + args.amp))
        print("%-20s %10s %10s %10s %12s" % ("implementation", "fwd ms", "bwd ms", "step ms",
                                             "GPU peak" if cuda else "RSS delta"))
        for r in rows:
            print("%-20s %10.2f %10.2f %10.2f %9.0f MiB" % (
                r["impl"], r["forward_ms"], r["backward_ms"], r["forward_ms"] + r["backward_ms"],
                r[memory_key] / 2**20))
        print("\nratios ours / PyTorch (time = training step; memory = %s)" %
              ("GPU allocator peak" if cuda else "RSS delta"))
        header = "%-20s" % "" + "".join("%22s" % t["impl"] for t in theirs)
        print(header)
        for ours in rows[:len(modes)]:
            cells = []
            for t in theirs:
                time_ratio = (ours["forward_ms"] + ours["backward_ms"]) / (t["forward_ms"] + t["backward_ms"])
                memory_ratio = ours[memory_key] / max(1, t[memory_key])
                cells.append("%22s" % ("t %.2f  m %.3f" % (time_ratio, memory_ratio)))
            print("%-20s" % ours["impl"] + "".join(cells))


if __name__ == "__main__":
    main()

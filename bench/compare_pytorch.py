#!/usr/bin/python3
"""Runs `densenet bench` and the same training step in PyTorch, measured the same way in the
same run, and prints one table with ratios (ours / PyTorch) for time and memory.

PyTorch implementations (whichever PyTorch runs this script: Debian's python3-torch 1.13, or pip's
torch 2.11 with torchvision 0.26 and timm from `scripts/setup.sh --bench`):
  pytorch-plain          plain autograd DenseNet, like the original project's non-efficient model
  pytorch-checkpoint     the same with torch.utils.checkpoint around concat-BN-ReLU-conv1 of each
                         layer (the original project's efficient model, torchvision's approach)
  pytorch-plain-compile  torch.compile(pytorch-plain) (default where torchvision does not apply)
  torchvision            torchvision.models.DenseNet (memory_efficient False) for the ImageNet
                         presets; for the 32x32 BC presets its _DenseBlock/_Transition with the
                         configuration's stem (BC configurations only)
  torchvision-me         the same with memory_efficient=True
  torchvision-compile    torch.compile(torchvision), default mode, inductor (on the CPU it compiles
                         C++ with g++); PyTorch >= 2.0
  timm                   timm.create_model(NAME) for densenet121/161/169/201 at more than 32 px
                         (timm's densenet264d is k=48 with a deep stem: not our densenet264)
An implementation that this PyTorch lacks (torch.compile in 1.13, timm not installed) is listed
as skipped with the reason; one that fails (a compiler error) as failed with the error's first
lines; the run goes on. `--formats nchw,channels_last` runs every PyTorch implementation in both
memory formats (model and input in torch.channels_last) and our naive mode also with
--channels-last (our other modes keep NCHW planes); the faster format of each PyTorch
implementation is marked with * in the ratios.

Each PyTorch measurement runs in a fresh process, measured as `densenet bench` measures ours.
Memory first, with freed memory returned to the system at once (mmap threshold 64 KiB,
malloc_trim) from the start of the process: warm-up steps, RSS before, the kernel's peak-RSS
mark reset, one step; memory = peak RSS - RSS before. Then time: freed memory kept in the heap
for reuse (no mmap, no trimming, as a caching allocator would), so steps time the computation
rather than page faults; warm-up steps, timed steps. (The other
order fails: blocks the timed steps freed stay in the heap, are handed out again and stay
resident, so RSS would count dead memory; `densenet bench` measures RSS in a child process.)
torch.compile compiles in the first warm-up step, before anything is measured.

On CUDA (--device cuda) both sides synchronise the device around each timed step and memory is
the caching allocator's peak allocated bytes above what was allocated before the timed steps
(model, input), as torch.cuda.max_memory_allocated reports it. TF32 and cuDNN autotuning are
left at PyTorch's defaults on both sides unless --cudnn-benchmark is given.

usage: bench/compare_pytorch.py --densenet build/densenet --arch densenet-40 [--batch 64]
                                [--threads 2] [--warmup 1] [--iters 3] [--device cpu|cuda]
                                [--cudnn-benchmark] [--amp none|fp16|bf16] [--json]
                                [--formats nchw,channels_last] [--impls LIST] [--timeout S]
                                [--in-channels C] [--input-size S] [--num-classes N]
    ~/.cache/densenet/torch-2.11.0/bin/python bench/compare_pytorch.py ...   # pip's PyTorch 2.11
"""
import argparse
import ctypes
import gc
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))


def imagenet(growth_rate, block_config, num_init_features):
    return dict(in_channels=3, num_init_features=num_init_features, growth_rate=growth_rate,
                block_config=block_config, bn_size=4, compression=0.5, num_classes=1000, input_size=224)


def cifar(growth_rate, layers, num_init_features, bn_size, compression):
    return dict(in_channels=3, num_init_features=num_init_features, growth_rate=growth_rate,
                block_config=[layers] * 3, bn_size=bn_size, compression=compression, num_classes=10,
                input_size=32)


# The presets of `densenet info` (same options as src/model/presets.cpp).
PRESETS = {
    "densenet121": imagenet(32, [6, 12, 24, 16], 64),
    "densenet161": imagenet(48, [6, 12, 36, 24], 96),
    "densenet169": imagenet(32, [6, 12, 32, 32], 64),
    "densenet201": imagenet(32, [6, 12, 48, 32], 64),
    "densenet264": imagenet(32, [6, 12, 64, 48], 64),
    "densenet-bc-40": cifar(12, 6, 24, 4, 0.5),
    "densenet-bc-100": cifar(12, 16, 24, 4, 0.5),
    "densenet-bc-190": cifar(40, 31, 80, 4, 0.5),
    "densenet-bc-250": cifar(24, 41, 48, 4, 0.5),
    "densenet-40": cifar(12, 12, 24, 0, 1.0),
}
# timm's models that are the same network as our preset (timm builds the stem from 2k channels, as
# these have). timm's densenet264d is not densenet264: k=48 and a three-convolution stem.
TIMM_MODELS = {"densenet121": "densenet121", "densenet161": "densenet161", "densenet169": "densenet169",
               "densenet201": "densenet201"}
IMPLS = ["pytorch-plain", "pytorch-checkpoint", "pytorch-plain-compile", "torchvision", "torchvision-me",
         "torchvision-compile", "timm"]
FORMATS = ["nchw", "channels_last"]
DTYPES = {"none": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}


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
    for key in ("in_channels", "input_size", "num_classes"):
        if getattr(args, key):
            cfg[key] = getattr(args, key)
    return cfg


def applicable(cfg, arch):
    """The implementations that can build this configuration, in IMPLS order."""
    impls = ["pytorch-plain", "pytorch-checkpoint", "pytorch-plain-compile"]
    if cfg["bn_size"] > 0:  # torchvision has no plain (bn_size 0) layers
        impls += ["torchvision", "torchvision-me", "torchvision-compile"]
    if arch in TIMM_MODELS and cfg["input_size"] > 32:  # timm has the ImageNet stem only
        impls.append("timm")
    return impls


def default_impls(cfg, arch):
    """All that apply, with one compiled model: torchvision's where it applies."""
    impls = applicable(cfg, arch)
    if "torchvision-compile" in impls:
        impls.remove("pytorch-plain-compile")
    return impls


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


class Unavailable(Exception):
    """This Python's PyTorch cannot run the implementation (a skipped row, not a failure)."""


def build(impl, cfg, arch):
    import torch
    base = impl[:-len("-compile")] if impl.endswith("-compile") else impl
    if base != impl and not hasattr(torch, "compile"):
        raise Unavailable("torch %s has no torch.compile (PyTorch >= 2.0)" % torch.__version__)
    if base in ("pytorch-plain", "pytorch-checkpoint"):
        model = build_plain(cfg, checkpointed=base == "pytorch-checkpoint")
    elif base in ("torchvision", "torchvision-me"):
        model = build_torchvision(cfg, memory_efficient=base == "torchvision-me")
    else:
        model = build_timm(cfg, TIMM_MODELS[arch])
    return torch.compile(model) if base != impl else model


def build_plain(cfg, checkpointed):
    import torch.utils.checkpoint as cp
    import reference_densenet as ref
    model = ref.DenseNet(**cfg)
    if checkpointed:
        for module in model.modules():
            if isinstance(module, ref.DenseLayer):
                module.forward = checkpointed_forward(module, cp)
    return model


def build_torchvision(cfg, memory_efficient):
    import reference_densenet as ref
    import torchvision
    from torchvision.models.densenet import _DenseBlock, _Transition
    if ref.is_torchvision_shaped(cfg):  # torchvision's own model, as a user would build it
        return torchvision.models.DenseNet(
            growth_rate=cfg["growth_rate"], block_config=tuple(cfg["block_config"]),
            num_init_features=cfg["num_init_features"], bn_size=cfg["bn_size"],
            num_classes=cfg["num_classes"], memory_efficient=memory_efficient)
    # torchvision has no 32x32 stem: its blocks and transitions behind the configuration's stem.
    model = ref.DenseNet(**cfg)
    features = model.features
    channels = cfg["num_init_features"]
    for i, layers in enumerate(cfg["block_config"]):
        features._modules["denseblock%d" % (i + 1)] = _DenseBlock(
            layers, channels, cfg["bn_size"], cfg["growth_rate"], 0.0, memory_efficient=memory_efficient)
        channels += layers * cfg["growth_rate"]
        if i != len(cfg["block_config"]) - 1:
            out = int(channels * cfg["compression"])
            features._modules["transition%d" % (i + 1)] = _Transition(channels, out)
            channels = out
    return model


def build_timm(cfg, name):
    try:
        import timm
    except ImportError:
        raise Unavailable("timm is not installed for %s (scripts/setup.sh --bench installs it beside "
                          "pip's torch)" % sys.executable)
    return timm.create_model(name, pretrained=False, num_classes=cfg["num_classes"],
                             in_chans=cfg["in_channels"], block_config=tuple(cfg["block_config"]))


def checkpointed_forward(layer, cp):
    import torch
    import torch.nn.functional as F

    def bottleneck(*inputs):
        return layer.conv1(layer.relu1(layer.norm1(torch.cat(inputs, 1))))

    def forward(features):
        if any(f.requires_grad for f in features):
            # As torchvision of the same release checkpoints: 0.14 (torch 1.13) with 1.13's default,
            # the reentrant variant; 0.26 (torch 2.11) with use_reentrant=False, which 2.x asks for.
            reentrant = int(torch.__version__.split(".")[0]) < 2
            out = cp.checkpoint(bottleneck, *features, use_reentrant=reentrant)
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
    row = dict(impl=args.impl, arch=args.arch, batch=args.batch, threads=args.threads, device=args.device,
               amp=args.amp, dtype=DTYPES[args.amp], memory_format=args.format, torch=torch.__version__)
    try:
        row.update(measure(args))
        for library in ("torchvision", "timm"):
            if args.impl.startswith(library):
                row[library] = __import__(library).__version__
    except Unavailable as e:
        row["skipped"] = str(e)
    except Exception as e:  # a compiler's or a library's error: reported in the row, the run goes on
        import traceback
        traceback.print_exc()
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        row["failed"] = " ".join([type(e).__name__ + ":" if lines else type(e).__name__] + lines[:2])[:400]
    print(json.dumps(row))


def measure(args):
    """Builds args.impl, measures memory (CPU) then time as the module docstring says."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cuda = args.device == "cuda"
    device = torch.device(args.device)
    if cuda:
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    cfg = config_of(args)
    fmt = torch.channels_last if args.format == "channels_last" else torch.contiguous_format
    model = build(args.impl, cfg, args.arch).to(device=device, memory_format=fmt)
    model.train()
    x = torch.randn(args.batch, cfg["in_channels"], cfg["input_size"], cfg["input_size"], device=device)
    x = x.contiguous(memory_format=fmt)
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

    # The first step, timed on its own: for torch.compile it is the compilation.
    start = time.perf_counter()
    step()
    first_step_s = time.perf_counter() - start
    rss_delta = 0
    if not cuda:
        for _ in range(args.warmup - 1):
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
    row = dict(forward_ms=forward_ms, backward_ms=backward_ms, rss_delta_bytes=rss_delta,
               first_step_s=first_step_s)
    if cuda:
        row["peak_bytes"] = torch.cuda.max_memory_allocated() - allocated_before
        row["gpu"] = torch.cuda.get_device_name()
    return row


def libtorch_of(densenet):
    """'LibTorch 1.13.0' from `densenet --version` (the LibTorch our program was built with)."""
    out = subprocess.run([densenet, "--version"], capture_output=True, text=True).stdout
    return out.split("with ", 1)[1].strip().rstrip(")") if "with " in out else "?"


def run_ours(args, batch, modes, channels_last=False):
    command = [args.densenet, "bench", "--arch", args.arch, "--memory", ",".join(modes), "--batch", str(batch),
               "--threads", str(args.threads), "--warmup", str(args.warmup), "--iters", str(args.iters), "--json",
               "--device", args.device, "--amp", args.amp] + (["--cudnn-benchmark"] if args.cudnn_benchmark else [])
    command += ["--channels-last"] if channels_last else []
    for flag, value in (("--block-config", args.block_config), ("--in-channels", args.in_channels),
                        ("--input-size", args.input_size), ("--num-classes", args.num_classes)):
        if value:
            command += [flag, str(value)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("compare_pytorch: '%s' failed (exit %d): %s" % (
            " ".join(command), result.returncode, result.stderr.strip()))
    rows = []
    for line in result.stdout.splitlines():
        row = json.loads(line)
        row.update(impl="densenet " + row["memory"], torch=args.libtorch, dtype=DTYPES[args.amp],
                   memory_format="channels_last" if channels_last else "nchw")
        rows.append(row)
    return rows


def run_pytorch(args, impl, batch, fmt):
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--impl", impl, "--arch", args.arch,
               "--batch", str(batch), "--threads", str(args.threads), "--warmup", str(args.warmup),
               "--iters", str(args.iters), "--device", args.device, "--amp", args.amp, "--formats", fmt]
    for flag, value in (("--block-config", args.block_config), ("--in-channels", args.in_channels),
                        ("--input-size", args.input_size), ("--num-classes", args.num_classes)):
        if value:
            command += [flag, str(value)]
    command += ["--cudnn-benchmark"] if args.cudnn_benchmark else []
    row = dict(impl=impl, arch=args.arch, batch=batch, dtype=DTYPES[args.amp], memory_format=fmt, torch="?")
    # A session of its own, so that a timeout also ends the compiler processes inductor starts.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=args.timeout or None)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        row["failed"] = "timed out after %d s (--timeout)" % args.timeout
        return row
    lines = out.strip().splitlines()
    if process.returncode != 0 or not lines:
        sys.stderr.write("%s failed:\n%s\n" % (impl, err[-2000:]))
        last = [line for line in err.splitlines() if line.strip()]
        row["failed"] = "exit %d: %s" % (process.returncode, last[-1][:300] if last else "no output")
        return row
    row = json.loads(lines[-1])
    if "failed" in row:
        sys.stderr.write("%s failed:\n%s\n" % (impl, err[-2000:]))
    return row

def format_list(text):
    formats = text.split(",")
    for fmt in formats:
        if fmt not in FORMATS:
            raise argparse.ArgumentTypeError("expected nchw and/or channels_last, comma-separated, got '%s'" % text)
    return formats


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--densenet", default=os.path.join(HERE, "..", "build", "densenet"))
    parser.add_argument("--arch", default="densenet-40", choices=sorted(PRESETS))
    parser.add_argument("--batch", default="64", type=positive_list, help="batch sizes, e.g. 64 or 32,64")
    parser.add_argument("--threads", type=at_least(1), default=2)
    parser.add_argument("--warmup", type=at_least(0), default=1)
    parser.add_argument("--iters", type=at_least(1), default=3)
    parser.add_argument("--block-config", type=positive_list,
                        help="override the preset's layers per block, any number of blocks, e.g. 41,41,41")
    parser.add_argument("--in-channels", type=at_least(1), help="override the preset's input channels")
    parser.add_argument("--input-size", type=at_least(1),
                        help="override the preset's input size in pixels (the stem follows: 32x32 up to 32)")
    parser.add_argument("--num-classes", type=at_least(1), help="override the preset's classes")
    parser.add_argument("--memory", default="naive,efficient,minimal", help="our modes to run")
    parser.add_argument("--impls", help="PyTorch implementations to run (default: all that apply; "
                        "pytorch-plain-compile only where torchvision does not apply)")
    parser.add_argument("--formats", type=format_list, default=["nchw"],
                        help="memory formats of the PyTorch rows: nchw, channels_last or both")
    parser.add_argument("--timeout", type=at_least(0), default=0,
                        help="seconds per PyTorch row (torch.compile can take many minutes); 0 = none")
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
    args.batches = args.batch
    args.batch = ",".join(str(b) for b in args.batches)
    if args.block_config:
        args.block_config = ",".join(str(b) for b in args.block_config)
    if args.worker:
        return args
    args.modes = args.memory.split(",")
    unknown = [m for m in args.modes if m not in ("naive", "efficient", "minimal")]
    if unknown:
        parser.error("--memory: unknown mode '%s': use naive, efficient, minimal" % unknown[0])
    cfg = config_of(args)
    args.impls = choose_impls(parser, args.impls, cfg, args.arch)
    if not os.access(args.densenet, os.X_OK):
        parser.error("--densenet: '%s' is not an executable; build it or give its path" % args.densenet)
    return args


def choose_impls(parser, text, cfg, arch):
    if not text:
        return default_impls(cfg, arch)
    known = applicable(cfg, arch)
    impls = text.split(",")
    for impl in impls:
        if impl not in known:
            why = "" if impl in IMPLS else " (no such implementation)"
            parser.error("--impls: '%s' does not apply to %s%s; choose from %s" % (
                impl, arch, why, ", ".join(known)))
    return impls


def print_table(args, batch, rows):
    cuda = args.device == "cuda"
    # Memory compared: RSS delta on the CPU, the CUDA allocator's peak above the start on a GPU.
    memory_key = "peak_bytes" if cuda else "rss_delta_bytes"
    theirs = [r for r in rows if not r["impl"].startswith("densenet ")]
    ours = [r for r in rows if r["impl"].startswith("densenet ")]
    measured = [r for r in theirs if "forward_ms" in r]
    where = (measured[0].get("gpu", "CUDA") if measured else "CUDA") if cuda else "%d threads, CPU" % args.threads
    libraries = sorted({"%s %s" % (lib, r[lib]) for r in theirs for lib in ("torchvision", "timm") if lib in r})
    print("\n%s, batch %d, %s, %s" % (args.arch, batch, where, DTYPES[args.amp]))
    print("PyTorch: %s%s" % (sys.executable, "".join(", " + lib for lib in libraries)))
    print("%-22s %-16s %-14s %-14s %9s %9s %9s %11s" % ("implementation", "torch", "dtype", "format", "fwd ms",
                                                        "bwd ms", "step ms", "GPU peak" if cuda else "RSS delta"))
    for r in rows:
        head = "%-22s %-16s %-14s %-14s" % (r["impl"], r["torch"], r["dtype"], r["memory_format"])
        if "forward_ms" in r:
            print("%s %9.1f %9.1f %9.1f %7.0f MiB" % (head, r["forward_ms"], r["backward_ms"],
                                                       r["forward_ms"] + r["backward_ms"], r[memory_key] / 2**20))
        else:
            print("%s %s" % (head, "skipped: " + r["skipped"] if "skipped" in r else "failed: " + r["failed"]))
    for r in measured:
        if r["impl"].endswith("-compile"):
            print("%s, %s: the first step (torch.compile compiling forward and backward) took %.0f s" % (
                r["impl"], r["memory_format"], r["first_step_s"]))
    if not measured:
        return
    step = {id(r): r["forward_ms"] + r["backward_ms"] for r in ours + measured}
    fastest = {}
    for r in measured:
        if r["impl"] not in fastest or step[id(r)] < step[id(fastest[r["impl"]])]:
            fastest[r["impl"]] = r
    print("\nratios ours / PyTorch row (time = training step; memory = %s)%s" % (
        "GPU allocator peak" if cuda else "RSS delta",
        "; * = the faster format of that implementation" if len(args.formats) > 1 else ""))
    names = ["%s%s" % (o["impl"][len("densenet "):], " nhwc" if o["memory_format"] == "channels_last" else "")
             for o in ours]
    print("%-36s" % "PyTorch row" + "".join("%18s" % n for n in names))
    for t in measured:
        label = "%s %s%s" % (t["impl"], t["memory_format"], " *" if len(args.formats) > 1 and fastest[t["impl"]] is t else "")
        cells = ["t %.2f m %.3f" % (step[id(o)] / step[id(t)], o[memory_key] / max(1, t[memory_key])) for o in ours]
        print("%-36s" % label + "".join("%18s" % c for c in cells))


def main():
    args = parse_args()
    if args.worker:
        args.batch = args.batches[0]
        args.format = args.formats[0]
        worker(args)
        return
    args.libtorch = libtorch_of(args.densenet)
    ours_nhwc = "channels_last" in args.formats and "naive" in args.modes
    total = len(args.batches) * (1 + ours_nhwc + len(args.impls) * len(args.formats))
    done = 0
    for batch in args.batches:
        done += 1
        progress("[%d/%d] densenet bench, %s, batch %d" % (done, total, args.memory, batch))
        rows = run_ours(args, batch, args.modes)
        if ours_nhwc:
            done += 1
            progress("[%d/%d] densenet bench, naive --channels-last, batch %d" % (done, total, batch))
            rows += run_ours(args, batch, ["naive"], channels_last=True)
        for impl in args.impls:
            for fmt in args.formats:
                done += 1
                progress("[%d/%d] %s, %s, batch %d" % (done, total, impl, fmt, batch))
                rows.append(run_pytorch(args, impl, batch, fmt))
        if args.json_out:
            with open(args.json_out, "a") as f:
                for row in rows:
                    f.write(json.dumps(dict(row, batch=batch)) + "\n")
        if args.json:
            for row in rows:
                print(json.dumps(row))
        else:
            print_table(args, batch, rows)


if __name__ == "__main__":
    main()

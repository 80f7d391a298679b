#!/usr/bin/python3
"""PyTorch's DenseNet-BC forward + backward on the CPU in NCHW and in channels_last (NHWC), the
PyTorch side of docs/BENCHMARKS.md's channels-last comparison with `densenet bench
--channels-last`. The model is tests/reference/reference_densenet.py's (torchvision's module
names), by default DenseNet-BC-40 on Fashion-MNIST's shape, batch 64.

    /usr/bin/python3 bench/channels_last_pytorch.py --threads 2 --batch 64 --iters 8
    ~/.cache/densenet/torch-2.11.0/bin/python bench/channels_last_pytorch.py ...   # PyTorch 2.11

(bench/compare_pytorch.py --arch densenet-bc-40 --in-channels 1 --input-size 28 --formats
nchw,channels_last measures both formats beside ours in one run, with memory.)
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import reference_densenet  # noqa: E402


def step_ms(model, x, y, warmup, iters):
    for _ in range(warmup):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    start = time.perf_counter()
    for _ in range(iters):
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return (time.perf_counter() - start) / iters * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = reference_densenet.DenseNet(in_channels=1, num_init_features=24, growth_rate=12,
                                        block_config=(6, 6, 6), bn_size=4, compression=0.5,
                                        drop_rate=0, num_classes=10, input_size=28)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    nchw = step_ms(model, x, y, args.warmup, args.iters)
    model = model.to(memory_format=torch.channels_last)
    nhwc = step_ms(model, x.to(memory_format=torch.channels_last), y, args.warmup, args.iters)
    model = model.to(memory_format=torch.contiguous_format)
    again = step_ms(model, x, y, args.warmup, args.iters)
    print("PyTorch %s DenseNet-BC-40 batch %d, %d threads, forward + backward: NCHW %.0f ms, "
          "channels_last %.0f ms, NCHW again %.0f ms"
          % (torch.__version__, args.batch, args.threads, nchw, nhwc, again))


if __name__ == "__main__":
    main()

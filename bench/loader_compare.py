#!/usr/bin/python3
"""The loader targets of issue 11, measured side by side in one run (docs/BENCHMARKS.md).

imagenet: writes a folder of JPEGs of about 500x375 (ImageNet's typical size) and times one
  epoch of RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor + Normalize at the same
  worker count and batch size with
    torch.utils.data.DataLoader(torchvision.datasets.ImageFolder(...)), and
    densenet data --dataset imagefolder --transform train.
  Target: densenet >= 1.5x torch's images/s.
fashion-mnist: `densenet data` on Debian's Fashion-MNIST (pad-4 random crop + flip) against the
  images/s that one training step of the default model consumes (`densenet bench`).
  Target: loader >= 20x the step's images/s.

Usage (Debian's python3-torch/torchvision; pip's torch 2.11 and torchvision 0.26 from
`scripts/setup.sh --bench` run it the same way as ~/.cache/densenet/torch-2.11.0/bin/python):
    /usr/bin/python3 bench/loader_compare.py --densenet build/densenet imagenet \
        --dir /tmp/jpegs --images 1024 --workers 2
    /usr/bin/python3 bench/loader_compare.py --densenet build/densenet fashion-mnist
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import time

import numpy as np


def make_jpegs(root, count, classes, seed=0):
    from PIL import Image
    rng = np.random.default_rng(seed)
    marker = os.path.join(root, f".made-{count}-{classes}")
    if os.path.exists(marker):
        return
    for i in range(count):
        cls = f"n{i % classes:08d}"
        os.makedirs(os.path.join(root, "train", cls), exist_ok=True)
        w, h = (500, 375) if i % 4 else (375, 500)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        phase = rng.uniform(0, 6.28, 3)
        image = np.stack([127 + 100 * np.sin(x / (13 + 7 * c) + phase[c]) * np.cos(y / 17.0)
                          for c in range(3)], axis=-1)
        image += rng.normal(0, 18, image.shape)  # texture: JPEG sizes like photographs'
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            os.path.join(root, "train", cls, f"img{i:06d}.JPEG"), quality=90)
    open(marker, "w").close()


def cpu_seconds():
    """CPU time of this process and its finished children (DataLoader workers, densenet)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_torch(root, workers, batch, epochs):
    import torch
    from torchvision import datasets, transforms
    transform = transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(os.path.join(root, "train"), transform=transform)
    # Workers end with each epoch, so that their CPU time is counted (RUSAGE_CHILDREN).
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True,
                                         num_workers=workers)
    rates, cpu_ms = [], []
    for _ in range(epochs):
        start, cpu = time.perf_counter(), cpu_seconds()
        images = 0
        for x, _ in loader:
            images += x.shape[0]
        del x
        rates.append(images / (time.perf_counter() - start))
        cpu_ms.append(1e3 * (cpu_seconds() - cpu) / images)
    return max(rates), min(cpu_ms)


def time_densenet(densenet, args):
    cpu = cpu_seconds()
    out = subprocess.run([densenet, "data", "--json"] + args, check=True, capture_output=True,
                         text=True).stdout
    report = json.loads(out)
    best = max(report["epochs"], key=lambda e: e["images_per_second"])
    images = sum(e["images"] for e in report["epochs"])
    # The whole process: start-up and the folder scan included.
    best["cpu_ms"] = 1e3 * (cpu_seconds() - cpu) / images
    return best, report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--densenet", required=True, help="the densenet executable")
    sub = parser.add_subparsers(dest="target", required=True)
    imagenet = sub.add_parser("imagenet")
    imagenet.add_argument("--dir", default="/tmp/densenet-loader-jpegs")
    imagenet.add_argument("--images", type=int, default=1024)
    imagenet.add_argument("--classes", type=int, default=16)
    imagenet.add_argument("--workers", type=int, default=2)
    imagenet.add_argument("--batch", type=int, default=64)
    imagenet.add_argument("--epochs", type=int, default=2, help="epochs per round")
    imagenet.add_argument("--rounds", type=int, default=2, help="alternated rounds, best of each")
    fmnist = sub.add_parser("fashion-mnist")
    fmnist.add_argument("--workers", type=int, default=2)
    fmnist.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")

    if args.target == "imagenet":
        make_jpegs(args.dir, args.images, args.classes)
        # Alternated rounds, best of each: the machine's load changes within minutes.
        torch_rate, torch_cpu, ours, ours_cpu = 0.0, float("inf"), 0.0, float("inf")
        for _ in range(args.rounds):
            rate, cpu = time_torch(args.dir, args.workers, args.batch, args.epochs)
            torch_rate, torch_cpu = max(torch_rate, rate), min(torch_cpu, cpu)
            run, _ = time_densenet(args.densenet, [
                "--dataset", "imagefolder", "--root", args.dir, "--transform", "train",
                "--workers", str(args.workers), "--batch", str(args.batch),
                "--epochs", str(args.epochs)])
            if run["images_per_second"] > ours:
                best = run
            ours, ours_cpu = max(ours, run["images_per_second"]), min(ours_cpu, run["cpu_ms"])
        print(f"{args.images} JPEGs ~500x375, RandomResizedCrop(224) + flip + normalise, "
              f"batch {args.batch}, {args.workers} workers, best epoch of {args.rounds} alternated "
              f"rounds of {args.epochs} epochs each")
        print(f"  torch DataLoader + torchvision ImageFolder: {torch_rate:8.1f} images/s, "
              f"{torch_cpu:.2f} CPU ms/image")
        print(f"  densenet data:                              {ours:8.1f} images/s, "
              f"{ours_cpu:.2f} CPU ms/image   (stages, wall time in the workers: read "
              f"{best['read_us']:.0f} us, decode {best['decode_us']:.0f} us, augment "
              f"{best['augment_us']:.0f} us, collate {best['collate_us']:.0f} us per image)")
        print(f"  ratio: {ours / torch_rate:.2f}x images/s (target >= 1.5x); "
              f"{torch_cpu / ours_cpu:.2f}x less CPU per image")
    else:
        best, _ = time_densenet(args.densenet, [
            "--dataset", "fashion-mnist", "--transform", "train", "--workers",
            str(args.workers), "--batch", str(args.batch)])
        step = subprocess.run(
            [args.densenet, "bench", "--arch", "densenet-bc-100", "--in-channels", "1",
             "--input-size", "28", "--num-classes", "10", "--block-config", "6,6,6",
             "--batch", str(args.batch), "--memory", "efficient", "--json"],
            check=True, capture_output=True, text=True).stdout
        step_report = json.loads(step.strip().splitlines()[-1])
        step_seconds = (step_report["forward_ms"] + step_report["backward_ms"]) / 1000.0
        step_rate = args.batch / step_seconds
        ours = best["images_per_second"]
        print(f"Fashion-MNIST train (pad-4 crop + flip), batch {args.batch}, "
              f"{args.workers} workers")
        print(f"  densenet data: {ours:10.0f} images/s")
        print(f"  one training step of densenet-bc-100 (6,6,6, 1x28x28): {step_rate:8.1f} images/s")
        print(f"  ratio: {ours / step_rate:.0f}x (target >= 20x)")


if __name__ == "__main__":
    main()

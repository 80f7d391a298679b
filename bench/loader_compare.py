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

Usage (Debian's python3-torch/torchvision):
    /usr/bin/python3 bench/loader_compare.py --densenet build/densenet imagenet \
        --dir /tmp/jpegs --images 1024 --workers 2
    /usr/bin/python3 bench/loader_compare.py --densenet build/densenet fashion-mnist
"""
import argparse
import json
import os
import platform
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


def time_torch(root, workers, batch, epochs):
    import torch
    from torchvision import datasets, transforms
    transform = transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    dataset = datasets.ImageFolder(os.path.join(root, "train"), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        images = 0
        for x, _ in loader:
            images += x.shape[0]
        rates.append(images / (time.perf_counter() - start))
    return max(rates)


def time_densenet(densenet, args):
    out = subprocess.run([densenet, "data", "--json"] + args, check=True, capture_output=True,
                         text=True).stdout
    report = json.loads(out)
    best = max(report["epochs"], key=lambda e: e["images_per_second"])
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
    imagenet.add_argument("--epochs", type=int, default=2, help="best of N epochs each")
    fmnist = sub.add_parser("fashion-mnist")
    fmnist.add_argument("--workers", type=int, default=2)
    fmnist.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")

    if args.target == "imagenet":
        make_jpegs(args.dir, args.images, args.classes)
        torch_rate = time_torch(args.dir, args.workers, args.batch, args.epochs)
        best, _ = time_densenet(args.densenet, [
            "--dataset", "imagefolder", "--root", args.dir, "--transform", "train",
            "--workers", str(args.workers), "--batch", str(args.batch),
            "--epochs", str(args.epochs)])
        ours = best["images_per_second"]
        print(f"{args.images} JPEGs ~500x375, RandomResizedCrop(224) + flip + normalise, "
              f"batch {args.batch}, {args.workers} workers, best of {args.epochs} epochs")
        print(f"  torch DataLoader + torchvision ImageFolder: {torch_rate:8.1f} images/s")
        print(f"  densenet data:                              {ours:8.1f} images/s   "
              f"(read {best['read_us']:.0f} us, decode {best['decode_us']:.0f} us, augment "
              f"{best['augment_us']:.0f} us, collate {best['collate_us']:.0f} us per image)")
        print(f"  ratio: {ours / torch_rate:.2f}x (target >= 1.5x)")
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

#!/usr/bin/python3
"""Trains a DenseNet-BC on Fashion-MNIST with PyTorch, the way a user would: the PyTorch side of
the time-to-accuracy comparison with `densenet train` (docs/BENCHMARKS.md). Runs under Debian's
PyTorch 1.13 (/usr/bin/python3, the history) and pip's PyTorch 2.11 with torchvision 0.26
(`scripts/setup.sh --bench`; ~/.cache/densenet/torch-2.11.0/bin/python).

What "the way a user would" means here: torchvision's FashionMNIST dataset class and transforms
(RandomCrop(28, padding=P) when P > 0, RandomHorizontalFlip(p), ToTensor, Normalize(0.2860,
0.3530)), a torch
DataLoader with N worker processes, a torchvision-style DenseNet-BC with the small-input stem
(tests/reference/reference_densenet.py, torchvision's module names; torchvision's weight
initialisation), SGD (momentum, nesterov, weight decay) and a learning rate set every
iteration as `densenet train` schedules it: cosine (LambdaLR with the closed form 0.5 (1 +
cos(pi t / T)), T the run's iterations) or MultiStepLR (milestones in epochs, default 0.5 and
0.75 of the epochs, the DenseNet paper's). The short last batch is dropped, as `densenet train`
(and timm) drop it. The defaults are configs/fashion-mnist.yaml's. Test loss, top-1 and top-5
accuracy after every epoch; at the end the time to --target-accuracy test top-1 (evaluation
included) and the mean training images/s. `--amp bf16` runs forward and loss under
torch.autocast("cpu", torch.bfloat16), backward outside, float32 weights, evaluation in float32,
as `densenet train --amp bf16` does; `--channels-last` puts model and batches in
torch.channels_last (PyTorch's faster format for convolutions on the CPU).

Fashion-MNIST comes from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, the
IDX .gz files); torchvision's class wants them uncompressed under <root>/FashionMNIST/raw, so
they are decompressed once into --cache-dir.

    /usr/bin/python3 bench/train_pytorch.py --threads 2 --workers 1 --epochs 1 \
        --max-train-samples 2000 --json /tmp/pytorch.json
    ~/.cache/densenet/torch-2.11.0/bin/python bench/train_pytorch.py --threads 2 --amp bf16
"""
import argparse
import gzip
import json
import math
import os
import shutil
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import reference_densenet  # noqa: E402

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics, as `densenet train`


def ints(text):
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def floats(text):
    return [float(v) for v in text.replace(" ", "").split(",") if v]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="folder with the Fashion-MNIST IDX files (.gz or not)")
    p.add_argument("--cache-dir", default="/tmp/densenet-fashion-mnist-torchvision",
                   help="where torchvision's raw/ layout is made")
    p.add_argument("--growth-rate", type=int, default=12)
    p.add_argument("--block-config", type=ints, default=[6, 6, 6])
    p.add_argument("--bn-size", type=int, default=4)
    p.add_argument("--compression", type=float, default=0.5)
    p.add_argument("--num-init-features", type=int, default=None, help="default: 2 * growth rate")
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--test-batch-size", type=int, default=256)
    p.add_argument("--keep-last", action="store_true",
                   help="keep the last partial training batch (default: dropped, as densenet train)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--lr-type", default="cosine", choices=["cosine", "multistep"])
    p.add_argument("--crop-padding", type=int, default=0, help="RandomCrop padding; 0 = no crop")
    p.add_argument("--hflip", type=float, default=0.5, help="RandomHorizontalFlip probability")
    p.add_argument("--milestones", type=floats, default=None,
                   help="epochs, comma-separated; default 0.5 and 0.75 of --epochs")
    p.add_argument("--gamma", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", type=int, default=1, choices=[0, 1])
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--amp", default="none", choices=["none", "bf16"],
                   help="bf16: training forward and loss under CPU autocast (as densenet train --amp bf16)")
    p.add_argument("--channels-last", action="store_true", help="model and batches in torch.channels_last")
    p.add_argument("--max-train-samples", type=int, default=0, help="0 = all 60000")
    p.add_argument("--max-eval-samples", type=int, default=0, help="0 = all 10000")
    p.add_argument("--target-accuracy", type=float, default=93.0, help="test top-1 in %%")
    p.add_argument("--json", default="", help="write a JSON summary here")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine: DistributedDataParallel over Gloo "
                        "(loopback), each with --threads threads and batch-size / nproc images a step; "
                        "rank 0 evaluates and prints")
    p.add_argument("--master-port", type=int, default=29541, help="with --nproc > 1")
    args = p.parse_args()
    if args.num_init_features is None:
        args.num_init_features = 2 * args.growth_rate
    if args.milestones is None:
        args.milestones = [0.5 * args.epochs, 0.75 * args.epochs]
    for name in ("batch_size", "test_batch_size", "epochs", "growth_rate"):
        if getattr(args, name) < 1:
            p.error("--%s must be >= 1, got %d" % (name.replace("_", "-"), getattr(args, name)))
    if args.crop_padding < 0 or not 0 <= args.hflip <= 1:
        p.error("--crop-padding must be >= 0 and --hflip in [0, 1]")
    if args.workers < 0 or args.threads < 0:
        p.error("--workers and --threads must be >= 0")
    return args


def torchvision_root(data, cache_dir):
    """A root that torchvision.datasets.FashionMNIST reads: <root>/FashionMNIST/raw/<file>."""
    raw = os.path.join(cache_dir, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for name in FILES:
        target = os.path.join(raw, name)
        if os.path.exists(target):
            continue
        plain, packed = os.path.join(data, name), os.path.join(data, name + ".gz")
        if os.path.exists(plain):
            os.symlink(os.path.abspath(plain), target)
        elif os.path.exists(packed):
            with gzip.open(packed, "rb") as src, open(target + ".part", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(target + ".part", target)
        else:
            sys.exit("train_pytorch.py: no Fashion-MNIST file '%s' (or .gz) in '%s'; install "
                     "dataset-fashion-mnist or pass --data" % (name, data))
    return cache_dir


def build_model(args):
    model = reference_densenet.DenseNet(
        in_channels=1, num_init_features=args.num_init_features, growth_rate=args.growth_rate,
        block_config=tuple(args.block_config), bn_size=args.bn_size, compression=args.compression,
        drop_rate=args.drop_rate, num_classes=10, input_size=28)
    # torchvision.models.densenet's initialisation.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.constant_(m.bias, 0)
    return model


def evaluate(model, loader, memory_format):
    model.eval()
    loss_sum, top1, top5, count = 0.0, 0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            logits = model(images.contiguous(memory_format=memory_format))
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            # torchvision references/classification/utils.py accuracy()
            pred = logits.topk(5, 1, True, True).indices
            correct = pred.eq(labels[:, None])
            top1 += int(correct[:, :1].any(1).sum())
            top5 += int(correct.any(1).sum())
            count += labels.numel()
    return loss_sum / count, 100.0 * top1 / count, 100.0 * top5 / count


def main():
    args = parse_args()
    args.root = torchvision_root(args.data, args.cache_dir)  # once, before any rank reads it
    if args.nproc > 1:
        import torch.multiprocessing as mp
        mp.spawn(run, args=(args,), nprocs=args.nproc)
    else:
        run(0, args)


def run(rank, args):
    distributed = args.nproc > 1
    if distributed:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % args.master_port,
                                rank=rank, world_size=args.nproc)
    torch.manual_seed(args.seed)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    root = args.root
    normalize = transforms.Normalize((MEAN,), (STD,))
    augment = [transforms.RandomCrop(28, padding=args.crop_padding)] if args.crop_padding > 0 else []
    augment.append(transforms.RandomHorizontalFlip(args.hflip))
    train_set = torchvision.datasets.FashionMNIST(root, train=True, download=False, transform=transforms.Compose(
        augment + [transforms.ToTensor(), normalize]))
    test_set = torchvision.datasets.FashionMNIST(root, train=False, download=False, transform=transforms.Compose([
        transforms.ToTensor(), normalize]))
    if args.max_train_samples > 0:
        train_set = torch.utils.data.Subset(train_set, range(min(args.max_train_samples, len(train_set))))
    if args.max_eval_samples > 0:
        test_set = torch.utils.data.Subset(test_set, range(min(args.max_eval_samples, len(test_set))))
    common = dict(num_workers=args.workers, persistent_workers=args.workers > 0)
    sampler = None
    if distributed:
        # The global batch of batch-size split over the ranks, as `densenet train` splits it.
        sampler = torch.utils.data.distributed.DistributedSampler(
            train_set, num_replicas=args.nproc, rank=rank, shuffle=True, seed=args.seed, drop_last=True)
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size // args.nproc,
                                               shuffle=sampler is None, sampler=sampler,
                                               drop_last=not args.keep_last, **common)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=args.test_batch_size, shuffle=False, **common)

    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = build_model(args).to(memory_format=memory_format)
    parameters = sum(p.numel() for p in model.parameters())
    module = model
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)  # 25 MiB buckets, as ours
    log = print if rank == 0 else (lambda *a, **k: None)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                nesterov=bool(args.nesterov), weight_decay=args.weight_decay)
    steps_per_epoch = len(train_loader)
    if args.lr_type == "cosine":
        total = steps_per_epoch * args.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    else:
        # Milestones in epochs -> iterations, rounded half up like densenet::train::Schedule.
        milestones = [int(math.floor(m * steps_per_epoch + 0.5)) for m in args.milestones]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=args.gamma)

    log("pytorch %s, torchvision %s, %d ranks x %d threads, %d workers; DenseNet-BC k=%d blocks %s bn %d "
          "compression %g init %d: %s parameters; %d training images, %d test images, batch %d, "
          "%d steps/epoch; %s lr %g, weight decay %g, crop padding %d, hflip %g; %s, %s"
          % (torch.__version__, torchvision.__version__, args.nproc, torch.get_num_threads(),
             args.workers, args.growth_rate, ",".join(map(str, args.block_config)),
             args.bn_size, args.compression, args.num_init_features,
             format(parameters, ","), len(train_set), len(test_set), args.batch_size,
             steps_per_epoch, args.lr_type, args.lr, args.weight_decay, args.crop_padding, args.hflip,
             "float32" if args.amp == "none" else "amp " + args.amp,
             "channels_last" if args.channels_last else "NCHW"),
          flush=True)
    log("epoch | train s | img/s | data wait | train loss | test loss | test top-1 acc % | "
          "test top-5 acc % | eval s | wall clock s", flush=True)
    epochs, target_seconds, target_epoch = [], None, None
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
        epoch_start = time.perf_counter()
        wait, loss_sum, count = 0.0, 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        batches = iter(train_loader)
        while True:
            fetch = time.perf_counter()
            try:
                images, labels = next(batches)
            except StopIteration:
                break
            wait += time.perf_counter() - fetch
            lr = optimizer.param_groups[0]["lr"]
            # Forward and loss under autocast, backward outside (torch.autocast's training step).
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
                loss = F.cross_entropy(model(images.contiguous(memory_format=memory_format)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * labels.numel() * args.nproc
            count += labels.numel() * args.nproc  # train loss: rank 0's share
        train_seconds = time.perf_counter() - epoch_start
        eval_start = time.perf_counter()
        test_loss, top1, top5 = evaluate(module, test_loader, memory_format) if rank == 0 else (0.0, 0.0, 0.0)
        if distributed:
            dist.barrier()
        eval_seconds = time.perf_counter() - eval_start
        wall = time.perf_counter() - start
        if target_seconds is None and top1 >= args.target_accuracy:
            target_seconds, target_epoch = wall, epoch
        record = dict(epoch=epoch, lr=lr, train_loss=loss_sum / count, epoch_seconds=train_seconds,
                      images_per_second=count / train_seconds, data_wait_share=wait / train_seconds,
                      eval_loss=test_loss, eval_top1=top1, eval_top5=top5, eval_seconds=eval_seconds,
                      elapsed_seconds=wall)
        epochs.append(record)
        log("%5d | %7.1f | %5.0f | %8.1f%% | %10.4f | %9.4f | %16.2f | %16.2f | %6.1f | %12.1f"
              % (epoch, train_seconds, record["images_per_second"], 100 * record["data_wait_share"],
                 record["train_loss"], test_loss, top1, top5, eval_seconds, wall), flush=True)
    if distributed:
        dist.destroy_process_group()
    if rank != 0:
        return
    if target_seconds is None:
        print("test top-1 accuracy never reached %.1f%% (best %.2f%%)" % (
            args.target_accuracy, max(e["eval_top1"] for e in epochs)))
    else:
        print("test top-1 accuracy first reached %.1f%% after epoch %d, %.1f s of wall clock "
              "(evaluation included)" % (args.target_accuracy, target_epoch, target_seconds))
    mean_epoch = sum(e["epoch_seconds"] for e in epochs) / len(epochs)
    images_per_second = sum(e["images_per_second"] for e in epochs) / len(epochs)
    print("mean training time per epoch: %.1f s, %.0f images/s" % (mean_epoch, images_per_second))
    if args.json:
        summary = dict(tool="bench/train_pytorch.py", torch=torch.__version__, torchvision=torchvision.__version__,
                       threads=torch.get_num_threads(), parameters=parameters, steps_per_epoch=steps_per_epoch,
                       train_samples=len(train_set), test_samples=len(test_set), args=vars(args),
                       epochs=epochs, mean_epoch_seconds=mean_epoch,
                       images_per_second=images_per_second, target_accuracy=args.target_accuracy,
                       time_to_target_seconds=target_seconds, target_epoch=target_epoch,
                       best_top1=max(e["eval_top1"] for e in epochs), total_seconds=time.perf_counter() - start)
        with open(args.json + ".part", "w") as f:
            json.dump(summary, f, indent=1)
        os.replace(args.json + ".part", args.json)
        print("wrote", args.json)


if __name__ == "__main__":
    main()

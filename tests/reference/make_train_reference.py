#!/usr/bin/python3
"""Writes reference data for the trainer's schedule and metric tests (tests/train/).

schedules.json: for each case, the options of densenet::train::Schedule and the learning rate
of every optimizer step 0..epochs*steps_per_epoch as torch.optim.lr_scheduler gives it, stepped
once per iteration (MultiStepLR, StepLR, CosineAnnealingLR, LinearLR + SequentialLR for the
warm-up). The original's triangle schedule, which torch lacks, comes from a line-by-line
transcription of wandering007/efficient-densenet-pytorch demo.py (on_sample, lr_type ==
'triangle').

topk.json: logits with many ties, labels, and the number of samples whose label is among the
top-k logits for several k, counted the way torchvision's references/classification/utils.py
accuracy() does (one torch.topk(maxk, sorted=True), then the first k columns), and with one
torch.topk(k) per k.

Run with Debian's python3-torch:
    /usr/bin/python3 tests/reference/make_train_reference.py --out build/golden/train
"""
import argparse
import json
import math
import os
import warnings

import torch

# SequentialLR steps the next scheduler with an explicit epoch, which torch 1.13 warns about.
warnings.filterwarnings("ignore", message="The epoch parameter")

FORMAT_VERSION = "1"
SEED = 20261130


def steps(epochs, steps_per_epoch):
    """Epochs to iterations as the C++ side rounds them (half away from zero, std::llround)."""
    return int(math.floor(epochs * steps_per_epoch + 0.5))


def torch_lrs(options, make_main):
    """The lr of every step 0..T from a torch scheduler stepped once per iteration."""
    total = options["epochs"] * options["steps_per_epoch"]
    warmup = steps(options["warmup_epochs"], options["steps_per_epoch"])
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=options["lr"])
    main = make_main(optimizer, warmup, total)
    if warmup > 0:
        linear = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=options["warmup_start_factor"], end_factor=1.0,
            total_iters=warmup)
        scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, main], milestones=[warmup])
    else:
        scheduler = main
    lrs = []
    for _ in range(total + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def triangle_lrs(options):
    """demo.py's triangle schedule, transcribed as written there (state['t'] is the step)."""
    total = options["epochs"] * options["steps_per_epoch"]
    lrs = []
    for t in range(total + 1):
        T_total = total
        num_cycles = 4
        min_lr = min(1e-3, options["lr"])
        max_lr = options["lr"]
        cycle_len = int(T_total * 0.9) // num_cycles
        if t < cycle_len * num_cycles:
            p = t % cycle_len
            if p < cycle_len / 2:
                lr = min_lr + (max_lr - min_lr) * p * 2 / cycle_len
            else:
                lr = max_lr - (max_lr - min_lr) * (p - cycle_len / 2) * 2 / cycle_len
        else:
            lr = min_lr * (T_total - t) / (T_total - cycle_len * num_cycles)
        lrs.append(lr)
    return lrs


def options(**kwargs):
    result = dict(type="multistep", lr=0.1, epochs=1, steps_per_epoch=1, milestones=[], gamma=0.1,
                  step_size=30.0, warmup_epochs=0.0, warmup_start_factor=0.1, min_lr=0.0)
    result.update(kwargs)
    return result


def multistep(o):
    milestones = o["milestones"] or [0.5 * o["epochs"], 0.75 * o["epochs"]]
    # Milestones are epochs since the start of training; SequentialLR starts the main scheduler
    # at the end of warm-up, so its milestones count from there.
    return lambda opt, warmup, total: torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=[steps(m, o["steps_per_epoch"]) - warmup for m in milestones], gamma=o["gamma"])


def step(o):
    return lambda opt, warmup, total: torch.optim.lr_scheduler.StepLR(
        opt, step_size=max(1, steps(o["step_size"], o["steps_per_epoch"])), gamma=o["gamma"])


def cosine(o):
    return lambda opt, warmup, total: torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=total - warmup, eta_min=o["min_lr"])


def schedule_cases():
    cases = []

    def add(name, o, how):
        lrs = triangle_lrs(o) if o["type"] == "triangle" else torch_lrs(o, how(o))
        cases.append(dict(name=name, options=o, lrs=lrs))

    # The paper's default milestones (0.5 and 0.75 of 10 epochs): 35 and round(52.5) = 53.
    add("multistep_default", options(type="multistep", lr=0.1, epochs=10, steps_per_epoch=7), multistep)
    add("multistep_fractional_gamma", options(type="multistep", lr=0.4, epochs=6, steps_per_epoch=9,
                                              milestones=[1.25, 2.5, 4.9], gamma=0.3), multistep)
    add("multistep_warmup", options(type="multistep", lr=0.1, epochs=8, steps_per_epoch=7,
                                    milestones=[3, 6], warmup_epochs=1.5), multistep)
    add("step", options(type="step", lr=0.1, epochs=9, steps_per_epoch=4, step_size=3), step)
    add("step_fractional_gamma", options(type="step", lr=0.2, epochs=5, steps_per_epoch=6,
                                         step_size=0.75, gamma=0.5), step)
    add("cosine", options(type="cosine", lr=0.05, epochs=6, steps_per_epoch=5, min_lr=0.001), cosine)
    add("cosine_warmup", options(type="cosine", lr=0.1, epochs=6, steps_per_epoch=5,
                                 warmup_epochs=1, warmup_start_factor=0.25), cosine)
    add("triangle", options(type="triangle", lr=0.1, epochs=5, steps_per_epoch=23), None)
    add("triangle_odd_cycle", options(type="triangle", lr=0.3, epochs=3, steps_per_epoch=17), None)
    add("triangle_low_lr", options(type="triangle", lr=5e-4, epochs=2, steps_per_epoch=11), None)
    return cases


def topk_case():
    generator = torch.Generator().manual_seed(SEED)
    n, c = 64, 7
    # Small integers make ties common (including ties across the k-th place); the last rows are
    # all equal, where only torch.topk's own order decides.
    logits = torch.randint(0, 4, (n, c), generator=generator).float()
    logits[: n // 2] += torch.randn(n // 2, c, generator=generator).mul(8).round().div(8)
    logits[-4:] = 1.5
    labels = torch.randint(0, c, (n,), generator=generator)
    ks = [1, 2, 3, 5, 7]
    pred = logits.topk(max(ks), 1, True, True).indices
    correct = pred.eq(labels[:, None])
    counts = [int(correct[:, :k].any(1).sum()) for k in ks]
    # torch.topk's order among ties depends on k, so a topk of k alone can count differently.
    single = [int(logits.topk(k, 1, True, True).indices.eq(labels[:, None]).any(1).sum()) for k in ks]
    return dict(logits=logits.tolist(), labels=labels.tolist(), ks=ks, counts=counts,
                counts_single_k=single)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    made_by = dict(format_version=FORMAT_VERSION, script="tests/reference/make_train_reference.py",
                   torch=torch.__version__)
    with open(os.path.join(args.out, "schedules.json"), "w") as f:
        json.dump(dict(made_by=made_by, cases=schedule_cases()), f)
    with open(os.path.join(args.out, "topk.json"), "w") as f:
        json.dump(dict(made_by=made_by, **topk_case()), f)
    print("wrote", args.out)


if __name__ == "__main__":
    main()

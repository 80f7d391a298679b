#!/usr/bin/env python3
"""Reference optimiser steps from torch.optim (Debian's python3-torch), for
tests/train/test_optimizer.cpp.

For each case, a float64 "model" with parameters named like a DenseNet's (a conv weight, a
batch-norm weight and bias, a linear weight and bias) takes 3 steps of torch.optim.SGD or
torch.optim.AdamW on fixed gradients; the file holds the initial parameters, the gradients of
each step, the parameters after each step and the optimiser's final state_dict(). Parameter
groups follow timm's param_groups_weight_decay (1-D tensors and biases undecayed) when
`no_decay` is set, as densenet::train::Optimizer builds them.
"""
import argparse
import os

import torch

NAMES = ["conv.weight", "norm.weight", "norm.bias", "classifier.weight", "classifier.bias"]
SHAPES = [(4, 3, 3, 3), (4,), (4,), (5, 4), (5,)]

CASES = {
    # name: (optimizer, kwargs, no_decay, lrs per step)
    "sgd_nesterov": ("sgd", dict(momentum=0.9, nesterov=True, weight_decay=1e-4), False,
                     [0.1, 0.05, 0.025]),
    "sgd_plain_no_decay": ("sgd", dict(momentum=0.9, nesterov=False, weight_decay=5e-4), True,
                           [0.1, 0.1, 0.01]),
    "adamw": ("adamw", dict(betas=(0.9, 0.999), weight_decay=0.05), False, [1e-3, 2e-3, 5e-4]),
    "adamw_no_decay": ("adamw", dict(betas=(0.8, 0.999), weight_decay=0.05), True,
                       [1e-3, 1e-3, 1e-3]),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    generator = torch.Generator().manual_seed(7)
    initial = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in SHAPES]
    grads = [[torch.randn(shape, generator=generator, dtype=torch.float64) for shape in SHAPES]
             for _ in range(3)]
    for case, (kind, kwargs, no_decay, lrs) in CASES.items():
        params = [torch.nn.Parameter(t.clone()) for t in initial]
        if no_decay:
            decay = [p for n, p in zip(NAMES, params) if not (p.ndim <= 1 or n.endswith(".bias"))]
            rest = [p for n, p in zip(NAMES, params) if p.ndim <= 1 or n.endswith(".bias")]
            groups = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
            order = decay + rest
        else:
            groups = [{"params": params}]
            order = params
        cls = torch.optim.SGD if kind == "sgd" else torch.optim.AdamW
        optimizer = cls(groups, lr=lrs[0], **kwargs)
        after = []
        for step in range(3):
            for group in optimizer.param_groups:
                group["lr"] = lrs[step]
            for p, g in zip(params, grads[step]):
                p.grad = g.clone()
            optimizer.step()
            after.append([p.detach().clone() for p in params])
        state = optimizer.state_dict()
        torch.save({
            "names": NAMES,
            "initial": initial,
            "grads": grads,
            "lrs": lrs,
            "after": after,
            # torch.optim's numbering of the parameters (group by group), by name.
            "order": [NAMES[[id(q) for q in params].index(id(p))] for p in order],
            "state_dict": state,
        }, os.path.join(args.out, case + ".pth"), _use_new_zipfile_serialization=True)


if __name__ == "__main__":
    main()

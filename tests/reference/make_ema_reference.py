#!/usr/bin/env python3
"""Reference model-EMA updates with timm's ModelEmaV3 formulas, for tests/train/test_model_ema.cpp.

timm is not a Debian package, so ModelEmaV3's two methods are restated below from
timm/utils/model_ema.py (huggingface/pytorch-image-models): get_decay(step) and apply_update_
(a lerp of every floating-point state-dict entry towards the model's with weight 1 - decay,
copy_ of the others). The model is a small DenseNet-BC (reference_densenet.py; the C++ test builds the
same options): its state dict goes through STEPS simulated optimiser steps (every floating-point
entry moved by noise, num_batches_tracked counted up), and after each the EMA is updated with
step = the step's number, as timm's train.py calls model_ema.update(model, step=num_updates).

Each case's file holds the model's state before the first step ("initial"), after each step
("model"), the EMA after each update ("ema") and the decay of each update ("decays").

Run with Debian's python3-torch:
    /usr/bin/python3 tests/reference/make_ema_reference.py --out build/golden/model_ema
"""
import argparse
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_densenet  # noqa: E402

# Kept in step with tests/train/test_model_ema.cpp's tiny_options().
CONFIG = dict(in_channels=3, num_init_features=8, growth_rate=4, block_config=[2, 2], bn_size=2,
              compression=0.5, drop_rate=0.0, num_classes=5, input_size=16)
STEPS = 6
SEED = 20261203

# name: ModelEmaV3 keyword arguments.
CASES = {
    "plain": dict(decay=0.9),
    "warmup": dict(decay=0.9, use_warmup=True),
    "warmup_min_decay": dict(decay=0.99, use_warmup=True, warmup_gamma=2.0, warmup_power=0.75,
                             min_decay=0.3),
    "update_after_step": dict(decay=0.8, update_after_step=2),
}


class ModelEmaV3:
    """The arithmetic of timm.utils.model_ema.ModelEmaV3 on state dicts (no module copy)."""

    def __init__(self, state, decay=0.9999, min_decay=0.0, update_after_step=0, use_warmup=False,
                 warmup_gamma=1.0, warmup_power=2 / 3):
        self.state = collections.OrderedDict((k, v.clone()) for k, v in state.items())
        self.decay = decay
        self.min_decay = min_decay
        self.update_after_step = update_after_step
        self.use_warmup = use_warmup
        self.warmup_gamma = warmup_gamma
        self.warmup_power = warmup_power

    def get_decay(self, step):
        step = max(0, step - self.update_after_step - 1)
        if step <= 0:
            return 0.0
        if self.use_warmup:
            decay = 1 - (1 + step / self.warmup_gamma) ** -self.warmup_power
            decay = max(min(decay, self.decay), self.min_decay)
        else:
            decay = self.decay
        return decay

    @torch.no_grad()
    def update(self, model_state, step):
        # apply_update_'s foreach=False branch: lerp_ per tensor, the same arithmetic as its
        # torch._foreach_lerp_ branch. (Debian's torch 1.13 has no _foreach_lerp_, and
        # apply_update_'s fallback for it, _foreach_mul_ then _foreach_add_, rounds differently:
        # decay * ema + (1 - decay) * model, one ulp away from lerp at times.)
        decay = self.get_decay(step)
        for ema_v, model_v in zip(self.state.values(), model_state.values()):
            if ema_v.is_floating_point():
                ema_v.lerp_(model_v, weight=1. - decay)
            else:
                ema_v.copy_(model_v)
        return decay


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = reference_densenet.build(CONFIG)
    initial = collections.OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    # The trained model's state after each step: floating-point entries drift, counters count.
    states, state = [], initial
    for _ in range(STEPS):
        state = collections.OrderedDict(
            (k, v + 0.1 * torch.randn(v.shape, generator=generator) if v.is_floating_point()
             else v + 1) for k, v in state.items())
        states.append(state)
    for case, kwargs in CASES.items():
        ema = ModelEmaV3(initial, **kwargs)
        decays, emas = [], []
        for step, state in enumerate(states, start=1):
            decays.append(ema.update(state, step))
            emas.append(collections.OrderedDict((k, v.clone()) for k, v in ema.state.items()))
        torch.save({
            "options": kwargs,
            "initial": initial,
            "model": states,
            "ema": emas,
            "decays": decays,
            "made_by": "tests/reference/make_ema_reference.py with torch " + torch.__version__,
        }, os.path.join(args.out, case + ".pth"), _use_new_zipfile_serialization=True)
        print("wrote %s/%s.pth" % (args.out, case))


if __name__ == "__main__":
    main()

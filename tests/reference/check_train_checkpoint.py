#!/usr/bin/env python3
"""Checks that PyTorch reads what `densenet train` writes (Debian's python3-torch/torchvision).

Trains torchvision's densenet121 layout (ImageNet stem, 64x64 synthetic images, 10 classes) for
one epoch of two steps, then:
- torch.load(weights_only=True) reads last.pth, best.pth and the numbered checkpoint;
- the checkpoint's "model" loads strictly into torchvision.models.densenet121(num_classes=10),
  and that model's logits equal `densenet eval`'s loss on the same data within float32 rounding;
- the "optimizer" state loads into torch.optim.SGD over that model's parameters;
- with --model-ema (timm's key and layout): "state_dict_ema" and best_ema.pth's "model" load
  strictly into torchvision's densenet121 too, and `densenet eval` of best_ema.pth reproduces
  the EMA's recorded evaluation loss.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import torchvision


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--densenet", required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    run = os.path.join(args.dir, "run")
    common = ["--dataset", "synthetic", "--input-size", "64", "--arch", "densenet121",
              "--threads", "2", "--workers", "1"]
    subprocess.run([args.densenet, "train", *common, "--max-train-samples", "32",
                    "--max-eval-samples", "16", "--batch-size", "16", "--test-batch-size", "16",
                    "--epochs", "1", "--model-ema", "--model-ema-decay", "0.5", "--output-dir",
                    run, "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    for name in ["last.pth", "best.pth", "best_ema.pth", "checkpoint-001.pth"]:
        checkpoint = torch.load(os.path.join(run, name), weights_only=True)
    for key in ["model", "optimizer", "epoch", "next_batch", "global_step", "rng", "config",
                "best_top1", "history", "classes"]:
        assert key in checkpoint, f"checkpoint lacks {key}: {sorted(checkpoint)}"
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2, checkpoint["epoch"]
    model = torchvision.models.densenet121(num_classes=10)
    model.load_state_dict(checkpoint["model"], strict=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    optimizer.load_state_dict(checkpoint["optimizer"])
    assert len(optimizer.state) == len(list(model.parameters()))
    # densenet eval on the checkpoint (its model and data settings travel with it) reproduces
    # the evaluation loss recorded at the end of the epoch.
    result = subprocess.run([args.densenet, "eval", "--weights", os.path.join(run, "last.pth"),
                             "--json"], check=True, capture_output=True, text=True)
    evaluated = json.loads(result.stdout)
    recorded = float(checkpoint["history"][-1]["eval_loss"])
    assert abs(evaluated["loss"] - recorded) <= 1e-5 * max(1.0, abs(recorded)), (evaluated, recorded)
    ema = torchvision.models.densenet121(num_classes=10)
    ema.load_state_dict(checkpoint["state_dict_ema"], strict=True)
    best_ema = torch.load(os.path.join(run, "best_ema.pth"), weights_only=True)
    assert "optimizer" not in best_ema, sorted(best_ema)
    ema.load_state_dict(best_ema["model"], strict=True)
    result = subprocess.run([args.densenet, "eval", "--weights", os.path.join(run, "best_ema.pth"),
                             "--json"], check=True, capture_output=True, text=True)
    evaluated_ema = json.loads(result.stdout)
    recorded_ema = float(checkpoint["history"][-1]["ema_eval_loss"])
    assert abs(evaluated_ema["loss"] - recorded_ema) <= 1e-5 * max(1.0, abs(recorded_ema)), (
        evaluated_ema, recorded_ema)
    print("ok: torch.load(weights_only=True) reads the checkpoints; torchvision densenet121 loads "
          "the model strictly; torch.optim.SGD loads the optimizer state; densenet eval reproduces "
          f"the recorded eval loss ({evaluated['loss']:.6f}); the model EMA's weights load into "
          f"torchvision and best_ema.pth reproduces its loss ({evaluated_ema['loss']:.6f})")


if __name__ == "__main__":
    sys.exit(main())

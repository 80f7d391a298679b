#!/usr/bin/python3
"""Writes golden data for the C++ parity tests (tests/test_parity.cpp).

For each configuration: weights with non-trivial BN affine parameters and running statistics,
an input and targets, eval-mode logits, then one training step (train-mode forward with a fixed
dropout seed, cross-entropy loss, backward): logits, loss, the gradient of the input and of every
parameter, and every buffer after the step. One safetensors file per configuration; the
configuration and how the file was made are in its metadata.

Run with Debian's python3-torch and python3-torchvision:
    /usr/bin/python3 tests/reference/make_golden.py --out build/golden [--large]
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_densenet  # noqa: E402
import safetensors_io  # noqa: E402

FORMAT_VERSION = "1"
SEED = 20261125
TRAIN_SEED = 1234


def config(in_channels, num_init_features, growth_rate, block_config, bn_size, compression,
           num_classes, input_size, drop_rate=0.0):
    return dict(in_channels=in_channels, num_init_features=num_init_features, growth_rate=growth_rate,
                block_config=list(block_config), bn_size=bn_size, compression=compression,
                drop_rate=drop_rate, num_classes=num_classes, input_size=input_size)


# name -> (configuration, batch). Together they cover plain and BC layers, both stems,
# compression < 1 with rounding, odd channel counts, dropout, batch 1, and torchvision itself.
SMALL = {
    "bc_small_stem": (config(3, 8, 4, (2, 3), 2, 0.5, 5, 16), 3),
    "plain_small_stem": (config(1, 6, 3, (3, 2, 2), 0, 1.0, 4, 12), 2),
    "bc_imagenet_stem_odd": (config(2, 10, 5, (2, 2), 3, 0.7, 3, 40), 2),
    "plain_imagenet_stem_batch1": (config(3, 7, 5, (3, 1), 0, 0.6, 6, 36), 1),
    "bc_dropout": (config(3, 8, 4, (2, 2), 2, 0.5, 3, 10, drop_rate=0.3), 2),
    "torchvision_small": (config(3, 16, 8, (2, 2, 2, 2), 4, 0.5, 10, 64), 2),
}
LARGE = {
    "densenet121": (config(3, 64, 32, (6, 12, 24, 16), 4, 0.5, 1000, 224), 2),
}


def randomize(model, generator):
    """Non-trivial BN affine parameters and running statistics, so swapped or ignored statistics
    cannot go unnoticed."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
                module.num_batches_tracked.fill_(int(torch.randint(0, 100, (1,), generator=generator)))
            elif isinstance(module, torch.nn.Linear):
                module.bias.copy_(torch.randn(module.out_features, generator=generator) * 0.1)


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|, the measure the C++ tests use."""
    scale = expected.abs().max().item()
    diff = (actual.double() - expected.double()).abs().max().item()
    return diff / scale if scale > 0 else diff


def run(model, state, x, target, dtype):
    """Eval forward, then one training step (forward with the fixed dropout seed, cross-entropy,
    backward) in `dtype`, starting from `state`. Returns every result by golden-file name."""
    model.load_state_dict(state)
    model.to(dtype)
    model.eval()
    with torch.no_grad():
        eval_logits = model(x.to(dtype))
    model.train()
    model.zero_grad(set_to_none=True)
    x_train = x.to(dtype).requires_grad_(True)
    torch.manual_seed(TRAIN_SEED)  # the C++ test seeds the same generator: same dropout masks
    train_logits = model(x_train)
    loss = F.cross_entropy(train_logits, target)
    loss.backward()
    out = {"eval.logits": eval_logits, "train.logits": train_logits.detach(),
           "train.loss": loss.detach().reshape(()), "grad.input": x_train.grad}
    for key, param in model.named_parameters():
        out["grad." + key] = param.grad.clone()
    for key, buffer in model.named_buffers():
        out["after." + key] = buffer.clone()
    model.to(torch.float32)
    return out


def generate(name, cfg, batch, out_dir):
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = reference_densenet.build(cfg)
    randomize(model, generator)
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    if reference_densenet.is_torchvision_shaped(cfg):
        # The reference must be torchvision for the configurations torchvision can express.
        twin = reference_densenet.DenseNet(**cfg)
        twin.load_state_dict(initial, strict=True)
        assert list(twin.state_dict().keys()) == list(initial.keys()), "key order differs"
        probe = torch.randn(2, cfg["in_channels"], cfg["input_size"], cfg["input_size"], generator=generator)
        twin.eval()
        model.eval()
        with torch.no_grad():
            assert torch.equal(twin(probe), model(probe)), "reference differs from torchvision"

    x = torch.randn(batch, cfg["in_channels"], cfg["input_size"], cfg["input_size"], generator=generator)
    target = torch.randint(0, cfg["num_classes"], (batch,), generator=generator)

    # The reference is computed in float64 from the float32 weights and input: the C++ tests
    # compare their float64 run to it tightly, and their float32 run to it with PyTorch's own
    # float32 error (measured here the same way) as the yardstick.
    reference = run(model, initial, x, target, torch.float64)
    float32 = run(model, initial, x, target, torch.float32)
    float32_error = {key: relative_error(float32[key], value) for key, value in reference.items()
                     if value.is_floating_point()}

    tensors = {"input": x, "target": target}
    for key, value in initial.items():
        tensors["state." + key] = value
    tensors.update(reference)
    metadata = {
        "config": json.dumps(cfg), "batch": batch, "train_seed": TRAIN_SEED,
        "reference_dtype": "float64", "pytorch_float32_error": json.dumps(float32_error),
        "format_version": FORMAT_VERSION,
        "made_by": "tests/reference/make_golden.py with torch %s%s" % (
            torch.__version__,
            " and torchvision %s" % __import__("torchvision").__version__
            if reference_densenet.is_torchvision_shaped(cfg) else ""),
    }
    safetensors_io.save(os.path.join(out_dir, name + ".safetensors"), tensors, metadata)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--large", action="store_true", help="also write torchvision densenet121")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    configs = dict(SMALL, **(LARGE if args.large else {}))
    for name, (cfg, batch) in configs.items():
        generate(name, cfg, batch, args.out)
        print("wrote %s/%s.safetensors" % (args.out, name))


if __name__ == "__main__":
    main()

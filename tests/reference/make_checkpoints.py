#!/usr/bin/python3
"""Writes the PyTorch checkpoints the .pth tests read (tests/test_pth.cpp, check_checkpoints.py).

- {arch}_legacy.pth for densenet121/161/169/201: a seeded random torchvision model (with random
  BN running statistics) saved as torchvision's published weights are: PyTorch's legacy
  (pre-zip) format, legacy key names (denselayer1.norm.1.weight), no num_batches_tracked.
  {arch}_io.safetensors: an input and the eval-mode logits PyTorch computes with those weights.
- generic_zip.pth / generic_legacy.pth: every dtype, views with offsets and strides, shared
  storages, a Parameter, an SGD optimizer's state_dict, nested containers and scalars.
- efficient_zip.pth: torchvision densenet121 weights renamed to wandering007's
  efficient-densenet-pytorch layout by its utils/convert.py rule (its current layout, with
  bottleneck.norm_num_batches_tracked), wrapped as {epoch, state_dict};
  efficient_old_zip.pth: the layout before December 2018, without that counter;
  efficient_legacy_dataparallel.pth: the old layout with DataParallel's "module." prefix, legacy
  format.
- protocol{1..5}_{zip,legacy}.pth: generic_*.pth's contents with each pickle protocol torch.save
  can write (0 cannot hold tensors).
- gpleiss_densenet121.pth, gpleiss_cifar.pth, wandering007_cifar.pth: random weights of the two
  efficient projects' models (efficient_projects.py), as their state_dict() names them.
- model_prefix.pth / backbone_prefix.pth: densenet121 weights with every key under "model." /
  "backbone.".
- namespace_{zip,legacy,protocol1}.pth: {epoch, state_dict, args: argparse.Namespace,
  best_acc1: numpy.float64, step: numpy.int64}, as training scripts save them.
- malicious_*.pth: pickles that would run os.system / eval when loaded with plain pickle.
- torchscript.pt, compressed.pth, text.pth, empty.pth: files that are not checkpoints;
  truncated_zip.pth, truncated_legacy.pth: two thirds of generic_*.pth.

Run with Debian's python3-torch and python3-torchvision:
    /usr/bin/python3 tests/reference/make_checkpoints.py --out build/tests/checkpoints
"""
import argparse
import collections
import os
import re
import sys
import zipfile

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efficient_projects  # noqa: E402
import safetensors_io  # noqa: E402

SEED = 20261125
ARCHS = ["densenet121", "densenet161", "densenet169", "densenet201"]
INPUT_SIZE = 64  # the published models accept any size >= 32; 64 keeps the test fast


def randomize_bn(model, generator):
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.num_batches_tracked.fill_(0)


def to_legacy_keys(state):
    """The inverse of torchvision's _load_state_dict rule; drops num_batches_tracked."""
    legacy = collections.OrderedDict()
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        legacy[re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)] = value
    return legacy


def to_efficient_keys(state, counters=True):
    """wandering007/efficient-densenet-pytorch's utils/convert.py --to efficient: norm1.* /
    conv1.* of a dense layer become bottleneck.norm_* / bottleneck.conv_* (num_batches_tracked
    too, as its bottleneck has had since December 2018; counters=False drops it, the older
    layout)."""
    out = collections.OrderedDict()
    for key, value in state.items():
        match = re.match(r"^(.*denselayer\d+)\.(norm|conv)1\.(.*)$", key)
        if match:
            if match.group(3) == "num_batches_tracked" and not counters:
                continue
            key = "%s.bottleneck.%s_%s" % (match.group(1), match.group(2), match.group(3))
        out[key] = value
    return out


def write_models(out):
    for index, arch in enumerate(ARCHS):
        torch.manual_seed(SEED + index)
        model = getattr(torchvision.models, arch)()
        generator = torch.Generator().manual_seed(SEED + 100 + index)
        randomize_bn(model, generator)
        model.eval()
        torch.save(to_legacy_keys(model.state_dict()), os.path.join(out, arch + "_legacy.pth"),
                   _use_new_zipfile_serialization=False)
        inputs = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=generator)
        with torch.no_grad():
            logits = model(inputs)
        safetensors_io.save(os.path.join(out, arch + "_io.safetensors"),
                            {"input": inputs, "logits": logits},
                            {"arch": arch, "torch": torch.__version__})


def generic_contents():
    generator = torch.Generator().manual_seed(SEED)
    base = torch.randn(6, 8, generator=generator)
    tensors = collections.OrderedDict()
    for dtype in [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                  torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool,
                  torch.complex64, torch.complex128]:
        tensors[str(dtype).replace("torch.", "")] = (base * 50).to(dtype)
    tensors["scalar"] = torch.tensor(3.5)
    tensors["empty"] = torch.zeros(0, 4)
    views = {
        "base": base,
        "rows": base[2:5],               # offset view of base
        "strided": base[1:, ::3],        # offset and strides
        "transposed": base.t(),
        "expanded": base[0].expand(3, 8),  # stride 0
    }
    # A real optimizer state: int keys, param_groups with floats, bools, None and lists.
    torch.manual_seed(SEED)
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    layer(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    return {
        "state_dict": tensors,
        "optimizer": optimizer.state_dict(),
        "views": views,
        "parameter": torch.nn.Parameter(torch.arange(4.0)),
        "nested": {
            "list": [1, -1, 2 ** 40, -(2 ** 40), 2 ** 70, 2.5, float("inf"), None, True, False],
            "tuple": (1, "two", (3.0, [4])),
            "text": "héllo ✓",
            "bytes": b"\x00\xffbinary",
            "set": {1, 2, 3},
            "empty": {},
        },
        "epoch": 7,
    }


def write_generic(out):
    contents = generic_contents()
    torch.save(contents, os.path.join(out, "generic_zip.pth"))
    torch.save(contents, os.path.join(out, "generic_legacy.pth"),
               _use_new_zipfile_serialization=False)


def write_efficient(out):
    torch.manual_seed(SEED)
    model = torchvision.models.densenet121()
    randomize_bn(model, torch.Generator().manual_seed(SEED))
    for module in model.modules():  # counters that are not 0, so that a dropped one shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.num_batches_tracked.fill_(1234)
    state = to_efficient_keys(model.state_dict())
    torch.save({"epoch": 90, "state_dict": state, "best_error": 0.25},
               os.path.join(out, "efficient_zip.pth"))
    state = to_efficient_keys(model.state_dict(), counters=False)
    torch.save({"epoch": 90, "state_dict": state}, os.path.join(out, "efficient_old_zip.pth"))
    wrapped = collections.OrderedDict(("module." + k, v) for k, v in state.items())
    torch.save({"epoch": 90, "state_dict": wrapped}, os.path.join(out,
               "efficient_legacy_dataparallel.pth"), _use_new_zipfile_serialization=False)
    torch.save(model.state_dict(), os.path.join(out, "densenet121_zip.pth"))


def write_protocols(out):
    contents = generic_contents()
    for protocol in range(1, 6):
        torch.save(contents, os.path.join(out, "protocol%d_zip.pth" % protocol),
                   pickle_protocol=protocol)
        torch.save(contents, os.path.join(out, "protocol%d_legacy.pth" % protocol),
                   _use_new_zipfile_serialization=False, pickle_protocol=protocol)


def write_projects(out):
    generator = torch.Generator().manual_seed(SEED + 7)
    for name in ["gpleiss_densenet121", "gpleiss_cifar", "wandering007_cifar"]:
        model = efficient_projects.randomize(getattr(efficient_projects, name)(), generator)
        torch.save(model.state_dict(), os.path.join(out, name + ".pth"))


def write_prefixed(out):
    torch.manual_seed(SEED + 3)
    state = torchvision.models.densenet121().state_dict()
    for prefix in ["model", "backbone"]:
        torch.save(collections.OrderedDict((prefix + "." + k, v) for k, v in state.items()),
                   os.path.join(out, prefix + "_prefix.pth"))


def write_namespace(out):
    """What a training script's checkpoint holds beside the weights; torch.load (weights_only
    False, 1.13's default) rebuilds these objects by running their classes."""
    torch.manual_seed(SEED + 5)
    model = torchvision.models.densenet121()
    randomize_bn(model, torch.Generator().manual_seed(SEED + 5))
    contents = {"epoch": 12, "state_dict": model.state_dict(),
                "args": argparse.Namespace(arch="densenet121", lr=0.1, milestones=[30, 60]),
                "best_acc1": np.float64(0.7125), "step": np.int64(4500)}
    torch.save(contents, os.path.join(out, "namespace_zip.pth"))
    torch.save(contents, os.path.join(out, "namespace_legacy.pth"),
               _use_new_zipfile_serialization=False)
    torch.save(contents, os.path.join(out, "namespace_protocol1.pth"),
               _use_new_zipfile_serialization=False, pickle_protocol=1)


class RunsShell:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-pickle",))


class Evaluates:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch pwned-by-eval')",))


def write_bad_files(out):
    torch.save({"weight": torch.ones(2), "payload": RunsShell()},
               os.path.join(out, "malicious_system_zip.pth"))
    torch.save({"payload": Evaluates()}, os.path.join(out, "malicious_eval_legacy.pth"),
               _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out, "torchscript.pt"))
    # A checkpoint re-zipped with compression: torch.load rejects it too.
    with zipfile.ZipFile(os.path.join(out, "generic_zip.pth")) as source, \
            zipfile.ZipFile(os.path.join(out, "compressed.pth"), "w",
                            compression=zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    for name in ["generic_zip", "generic_legacy"]:
        data = open(os.path.join(out, name + ".pth"), "rb").read()
        open(os.path.join(out, "truncated_%s.pth" % name.split("_")[1]), "wb").write(
            data[: len(data) * 2 // 3])
    with open(os.path.join(out, "text.pth"), "w") as f:
        f.write("this is not a checkpoint\n")
    open(os.path.join(out, "empty.pth"), "wb").close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    write_models(args.out)
    write_generic(args.out)
    write_efficient(args.out)
    write_protocols(args.out)
    write_projects(args.out)
    write_prefixed(args.out)
    write_namespace(args.out)
    write_bad_files(args.out)


if __name__ == "__main__":
    main()

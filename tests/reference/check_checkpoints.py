#!/usr/bin/python3
"""Checks `densenet convert` and the C++ .pth writer against PyTorch itself. (Each conversion
passes --force: the outputs of an earlier run are replaced.)

    check_checkpoints.py --densenet BIN --rewrite BIN --dir DIR CASE

CASE is one of:
  legacy:ARCH   torchvision-style legacy file -> densenet convert -> torchvision loads it with
                strict=True and every tensor is bit-identical (num_batches_tracked = 0 added).
  roundtrip     Python's zip and legacy files -> C++ -> zip (and forced zip64): torch.load gives
                the same structure, scalars, dtypes, shapes, strides, offsets, shared storages
                and bits; a densenet121 state dict through `densenet convert` is unchanged.
  efficient     wandering007's efficient layout (with bottleneck.norm_num_batches_tracked) ->
                torchvision -> wandering007 gives back the original file (keys, order, bits,
                the {epoch, ...} wrapper) and strict-loads into that project's model; the
                layout without the counter and its DataParallel legacy variant read too.
  projects      gpleiss's and wandering007's models (efficient_projects.py): each converts to
                torchvision and to the other, and each output strict-loads into its project's
                model with every tensor bit-identical.
  protocols     torch.save with pickle protocols 1 to 5, zip and legacy: C++ reads them and
                writes them back identical to what torch.load gives.
  opaque        a checkpoint holding argparse.Namespace and numpy scalars beside the weights:
                the tensors load (bit-identical) with one warning; nothing else is rebuilt.
  prefix        every key under "model." converts (strict torchvision load, bit-identical);
                under "backbone." it is one line naming the prefix, exit code 1.
  malicious     pickles that call os.system / eval are refused and nothing runs.
DIR holds make_checkpoints.py's files; outputs go there too.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import zipfile

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efficient_projects  # noqa: E402

_BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}


def bits(tensor):
    """A view whose equality is bit equality (NaN-safe, -0.0 distinct)."""
    if tensor.is_complex():
        tensor = torch.view_as_real(tensor)
    if tensor.dtype in _BITS:
        return tensor.view(_BITS[tensor.dtype])
    return tensor


def same_tensor(a, b, where):
    assert isinstance(b, torch.Tensor), "%s: expected a tensor, got %r" % (where, type(b))
    assert a.dtype == b.dtype, "%s: dtype %s vs %s" % (where, a.dtype, b.dtype)
    assert a.shape == b.shape, "%s: shape %s vs %s" % (where, a.shape, b.shape)
    assert a.stride() == b.stride(), "%s: stride %s vs %s" % (where, a.stride(), b.stride())
    assert a.storage_offset() == b.storage_offset(), "%s: offset" % where
    assert a.requires_grad == b.requires_grad, "%s: requires_grad" % where
    assert torch.equal(bits(a), bits(b)), "%s: values differ" % where


def same_value(a, b, where="root"):
    if isinstance(a, torch.Tensor):
        same_tensor(a, b, where)
        return
    assert type(a) is type(b), "%s: type %s vs %s" % (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), "%s: keys differ" % where
        for key in a:
            same_value(a[key], b[key], "%s.%s" % (where, key))
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), \
            "%s: _metadata differs" % where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), "%s: length" % where
        for i, (x, y) in enumerate(zip(a, b)):
            same_value(x, y, "%s.%d" % (where, i))
    else:
        assert a == b, "%s: %r vs %r" % (where, a, b)


def storages_shared(value):
    return value["views"]["rows"].storage().data_ptr() == \
        value["views"]["base"].storage().data_ptr() == \
        value["views"]["expanded"].storage().data_ptr()


def run(*command):
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def torchvision_names(legacy_state):
    """torchvision's own _load_state_dict rule."""
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    out = collections.OrderedDict()
    for key, value in legacy_state.items():
        match = pattern.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def check_against_torchvision(arch, converted, reference):
    model = getattr(torchvision.models, arch)()
    model.load_state_dict(converted, strict=True)
    for key, value in converted.items():
        if key.endswith("num_batches_tracked") and key not in reference:
            assert value.dtype == torch.int64 and value.dim() == 0 and value.item() == 0, key
        else:
            same_tensor(reference[key], value, key)
    missing = set(reference) - set(converted)
    assert not missing, "lost keys: %s" % sorted(missing)[:5]


def case_legacy(args, arch):
    source = os.path.join(args.dir, arch + "_legacy.pth")
    output = os.path.join(args.dir, arch + "_converted.pth")
    run(args.densenet, "convert", "--force", "--checkpoint", source, "--output", output,
        "--arch", arch)
    assert zipfile.is_zipfile(output), "convert must write the zip format"
    converted = torch.load(output)
    assert isinstance(converted, collections.OrderedDict)
    check_against_torchvision(arch, converted, torchvision_names(torch.load(source)))
    print("%s: %d tensors, torchvision strict load ok, bit-identical" % (arch, len(converted)))


def case_roundtrip(args):
    for name in ["generic_zip", "generic_legacy"]:
        source = os.path.join(args.dir, name + ".pth")
        original = torch.load(source)
        assert storages_shared(original)
        for variant in ["", "--zip64"]:
            output = os.path.join(args.dir, "%s.rewritten%s.pth" % (name, variant.replace("-", "_")))
            run(args.rewrite, source, output, *([variant] if variant else []))
            rewritten = torch.load(output)
            same_value(original, rewritten)
            assert storages_shared(rewritten), "views no longer share their storage"
            print("%s%s: identical after C++ rewrite" % (name, variant))
    source = os.path.join(args.dir, "densenet121_zip.pth")
    output = os.path.join(args.dir, "densenet121_zip.converted.pth")
    run(args.densenet, "convert", "--force", "--checkpoint", source, "--output", output, "--arch",
        "densenet121")
    same_value(torch.load(source), torch.load(output))
    print("densenet121 zip state dict: unchanged by convert (keys, order, bits, _metadata)")


def case_efficient(args):
    source = os.path.join(args.dir, "efficient_zip.pth")
    as_torchvision = os.path.join(args.dir, "efficient.torchvision.pth")
    back = os.path.join(args.dir, "efficient.back.pth")
    run(args.densenet, "convert", "--force", "--checkpoint", source, "--output", as_torchvision,
        "--arch", "densenet121")
    converted = torch.load(as_torchvision)
    assert converted["epoch"] == 90 and converted["best_error"] == 0.25, "wrapper lost"
    original = torch.load(source)
    reference = collections.OrderedDict()
    for key, value in original["state_dict"].items():
        match = re.match(r"^(.*denselayer\d+)\.bottleneck\.(norm|conv)_(.*)$", key)
        reference[("%s.%s1.%s" % match.groups()) if match else key] = value
    check_against_torchvision("densenet121", converted["state_dict"], reference)
    run(args.densenet, "convert", "--force", "--checkpoint", as_torchvision, "--output", back,
        "--to", "wandering007", "--arch", "densenet121")
    same_value(original, torch.load(back))
    strict_load(efficient_projects.wandering007_densenet121(), torch.load(back)["state_dict"])
    print("wandering007 layout: torchvision and back, identical; strict-loads into its model")
    old = os.path.join(args.dir, "efficient_old_zip.pth")
    old_torchvision = os.path.join(args.dir, "efficient_old.torchvision.pth")
    run(args.densenet, "convert", "--force", "--checkpoint", old, "--output", old_torchvision,
        "--arch", "densenet121", "--state-dict-only")
    reference = collections.OrderedDict(
        (key, torch.zeros((), dtype=torch.int64) if "denselayer" in key and
         key.endswith("norm1.num_batches_tracked") else value)
        for key, value in converted["state_dict"].items())
    same_value(reference, torch.load(old_torchvision))
    print("wandering007 layout before December 2018 (no counters): same weights, counters 0")
    dataparallel = os.path.join(args.dir, "efficient_legacy_dataparallel.pth")
    plain = os.path.join(args.dir, "efficient_dataparallel.torchvision.pth")
    run(args.densenet, "convert", "--force", "--checkpoint", dataparallel, "--output", plain,
        "--state-dict-only", "--arch", "densenet121")
    same_value(reference, torch.load(plain))
    print("DataParallel legacy efficient checkpoint: same torchvision weights")


def strict_load(model, state):
    """load_state_dict(strict=True), then every tensor of the model is the file's, bit for bit."""
    model.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(bits(value), bits(state[key])), key


def same_tensors(a, b):
    """Same keys in the same order, every tensor bit-identical (no _metadata check)."""
    assert list(a.keys()) == list(b.keys()), "keys differ: %s" % sorted(set(a) ^ set(b))[:5]
    for key in a:
        same_tensor(a[key], b[key], key)


def renamed(state, old, new):
    return collections.OrderedDict((key.replace(old, new), value) for key, value in state.items())


def convert(args, source, output, layout, *arch):
    run(args.densenet, "convert", "--force", "--checkpoint", source, "--output", output,
        "--to", layout, "--arch", *arch)
    return torch.load(output)


def case_projects(args):
    # gpleiss, ImageNet-sized: norm_final is torchvision's norm5, all else already matches.
    source = os.path.join(args.dir, "gpleiss_densenet121.pth")
    original = torch.load(source)
    tv = convert(args, source, os.path.join(args.dir, "gpleiss.torchvision.pth"), "torchvision",
                 "densenet121")
    strict_load(torchvision.models.densenet121(), tv)
    same_tensors(renamed(original, "features.norm_final.", "features.norm5."), tv)
    back = convert(args, os.path.join(args.dir, "gpleiss.torchvision.pth"),
                   os.path.join(args.dir, "gpleiss.back.pth"), "gpleiss", "densenet121")
    strict_load(efficient_projects.gpleiss_densenet121(), back)
    same_value(original, back)
    print("gpleiss densenet121: -> torchvision (strict) -> gpleiss (strict), identical")
    # Three blocks (the CIFAR DenseNet-BC): norm_final, torchvision's norm5, wandering007's norm4.
    cifar = ["densenet-bc-100", "--block-config", "4,4,4"]
    source = os.path.join(args.dir, "gpleiss_cifar.pth")
    original = torch.load(source)
    tv = convert(args, source, os.path.join(args.dir, "gpleiss_cifar.torchvision.pth"),
                 "torchvision", *cifar)
    same_tensors(renamed(original, "features.norm_final.", "features.norm5."), tv)
    as_wandering = convert(args, source, os.path.join(args.dir, "gpleiss_cifar.wandering007.pth"),
                           "wandering007", *cifar)
    strict_load(efficient_projects.wandering007_cifar(), as_wandering)
    back = convert(args, os.path.join(args.dir, "gpleiss_cifar.wandering007.pth"),
                   os.path.join(args.dir, "gpleiss_cifar.back.pth"), "gpleiss", *cifar)
    strict_load(efficient_projects.gpleiss_cifar(), back)
    same_value(original, back)
    print("gpleiss 3-block: -> torchvision (norm5), -> wandering007 (strict, norm4), -> gpleiss"
          " (strict), identical")
    source = os.path.join(args.dir, "wandering007_cifar.pth")
    original = torch.load(source)
    as_gpleiss = convert(args, source, os.path.join(args.dir, "wandering007_cifar.gpleiss.pth"),
                         "gpleiss", *cifar)
    strict_load(efficient_projects.gpleiss_cifar(), as_gpleiss)
    back = convert(args, os.path.join(args.dir, "wandering007_cifar.gpleiss.pth"),
                   os.path.join(args.dir, "wandering007_cifar.back.pth"), "wandering007", *cifar)
    strict_load(efficient_projects.wandering007_cifar(), back)
    assert set(original) == set(back), "keys differ"
    for key in original:
        same_tensor(original[key], back[key], key)
    print("wandering007 3-block (with counters): -> gpleiss (strict) -> wandering007 (strict),"
          " every tensor identical")


def case_protocols(args):
    for protocol in range(1, 6):
        for kind in ["zip", "legacy"]:
            source = os.path.join(args.dir, "protocol%d_%s.pth" % (protocol, kind))
            output = os.path.join(args.dir, "protocol%d_%s.rewritten.pth" % (protocol, kind))
            run(args.rewrite, source, output)
            original = torch.load(source)
            rewritten = torch.load(output)
            same_value(original, rewritten)
            assert storages_shared(rewritten)
            print("pickle protocol %d, %s format: read, identical after C++ rewrite"
                  % (protocol, kind))


def case_opaque(args):
    for name in ["namespace_zip", "namespace_legacy", "namespace_protocol1"]:
        source = os.path.join(args.dir, name + ".pth")
        output = os.path.join(args.dir, name + ".weights.pth")
        command = [args.densenet, "convert", "--force", "--checkpoint", source, "--output",
                   output, "--arch", "densenet121", "--state-dict-only"]
        print("+", " ".join(command), flush=True)
        result = subprocess.run(command, capture_output=True, text=True)
        print(result.stderr.strip())
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and "argparse.Namespace" in warnings[0] and \
            "numpy.core.multiarray.scalar" in warnings[0] and "never run" in warnings[0], \
            result.stderr
        same_value(torch.load(source)["state_dict"], torch.load(output))
        # Keeping the wrapper would mean writing objects that were never rebuilt: one clear error.
        result = subprocess.run(command[:-1], capture_output=True, text=True)
        assert result.returncode == 1, result.returncode
        assert "cannot write the Python object" in result.stderr, result.stderr
        print("%s: weights bit-identical, one warning, the wrapper refused in one line" % name)


def case_prefix(args):
    source = os.path.join(args.dir, "model_prefix.pth")
    output = os.path.join(args.dir, "model_prefix.torchvision.pth")
    run(args.densenet, "convert", "--force", "--checkpoint", source, "--output", output, "--arch",
        "densenet121")
    stripped = collections.OrderedDict((key[len("model."):], value)
                                       for key, value in torch.load(source).items())
    check_against_torchvision("densenet121", torch.load(output), stripped)
    print("model. prefix: stripped, torchvision strict load, bit-identical")
    result = subprocess.run([args.densenet, "convert", "--checkpoint",
                             os.path.join(args.dir, "backbone_prefix.pth"), "--output",
                             os.path.join(args.dir, "never.pth"), "--arch", "densenet121"],
                            capture_output=True, text=True)
    print(result.stderr.strip())
    assert result.returncode == 1, result.returncode
    assert len(result.stderr.strip().splitlines()) == 1, "expected one line"
    assert "every key in the weights starts with 'backbone.'" in result.stderr
    assert "all 727 keys match the model" in result.stderr
    print("backbone. prefix: one line naming it")


def case_malicious(args):
    for name, marker in [("malicious_system_zip.pth", "pwned-by-pickle"),
                         ("malicious_eval_legacy.pth", "pwned-by-eval")]:
        for command in (["inspect", os.path.join(args.dir, name)],
                        ["convert", "--checkpoint", os.path.join(args.dir, name), "--output",
                         os.path.join(args.dir, "never.pth")],
                        ["predict", "--arch", "densenet121", "--weights",
                         os.path.join(args.dir, name), "image.png"]):
            result = subprocess.run([args.densenet] + command, cwd=args.dir,
                                    capture_output=True, text=True)
            print(result.stderr.strip())
            assert result.returncode == 1, "exit code %d" % result.returncode
            assert "refusing to load" in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, "expected one line"
            assert not os.path.exists(os.path.join(args.dir, marker)), "the payload ran!"
    assert not os.path.exists(os.path.join(args.dir, "never.pth"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--densenet", required=True)
    parser.add_argument("--rewrite", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("case")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.case.startswith("legacy:"):
        case_legacy(args, args.case.split(":", 1)[1])
    elif args.case == "roundtrip":
        case_roundtrip(args)
    elif args.case == "efficient":
        case_efficient(args)
    elif args.case == "projects":
        case_projects(args)
    elif args.case == "protocols":
        case_protocols(args)
    elif args.case == "opaque":
        case_opaque(args)
    elif args.case == "prefix":
        case_prefix(args)
    elif args.case == "malicious":
        case_malicious(args)
    else:
        sys.exit("unknown case " + args.case)
    print("PASS")


if __name__ == "__main__":
    main()

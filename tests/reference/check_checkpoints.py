#!/usr/bin/python3
"""Checks `densenet convert` and the C++ .pth writer against PyTorch itself.

    check_checkpoints.py --densenet BIN --rewrite BIN --dir DIR CASE

CASE is one of:
  legacy:ARCH   torchvision-style legacy file -> densenet convert -> torchvision loads it with
                strict=True and every tensor is bit-identical (num_batches_tracked = 0 added).
  roundtrip     Python's zip and legacy files -> C++ -> zip (and forced zip64): torch.load gives
                the same structure, scalars, dtypes, shapes, strides, offsets, shared storages
                and bits; a densenet121 state dict through `densenet convert` is unchanged.
  efficient     the original project's efficient layout -> torchvision -> efficient-pytorch gives
                back the original file (keys, order, bits, the {epoch, ...} wrapper); its
                DataParallel legacy variant converts to the same torchvision weights.
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
        if key.endswith("num_batches_tracked"):
            assert reference.get(key) is None or torch.equal(reference[key], value), key
            assert value.dtype == torch.int64 and value.dim() == 0 and value.item() == 0, key
        else:
            same_tensor(reference[key], value, key)
    missing = set(reference) - set(converted)
    assert not missing, "lost keys: %s" % sorted(missing)[:5]


def case_legacy(args, arch):
    source = os.path.join(args.dir, arch + "_legacy.pth")
    output = os.path.join(args.dir, arch + "_converted.pth")
    run(args.densenet, "convert", "--checkpoint", source, "--output", output, "--arch", arch)
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
    run(args.densenet, "convert", "--checkpoint", source, "--output", output)
    same_value(torch.load(source), torch.load(output))
    print("densenet121 zip state dict: unchanged by convert (keys, order, bits, _metadata)")


def case_efficient(args):
    source = os.path.join(args.dir, "efficient_zip.pth")
    as_torchvision = os.path.join(args.dir, "efficient.torchvision.pth")
    back = os.path.join(args.dir, "efficient.back.pth")
    run(args.densenet, "convert", "--checkpoint", source, "--output", as_torchvision,
        "--arch", "densenet121")
    converted = torch.load(as_torchvision)
    assert converted["epoch"] == 90 and converted["best_error"] == 0.25, "wrapper lost"
    original = torch.load(source)
    reference = collections.OrderedDict()
    for key, value in original["state_dict"].items():
        match = re.match(r"^(.*denselayer\d+)\.bottleneck\.(norm|conv)_(.*)$", key)
        reference[("%s.%s1.%s" % match.groups()) if match else key] = value
    check_against_torchvision("densenet121", converted["state_dict"], reference)
    run(args.densenet, "convert", "--checkpoint", as_torchvision, "--output", back,
        "--to", "efficient-pytorch")
    same_value(original, torch.load(back))
    print("efficient layout: torchvision and back, identical")
    dataparallel = os.path.join(args.dir, "efficient_legacy_dataparallel.pth")
    plain = os.path.join(args.dir, "efficient_dataparallel.torchvision.pth")
    run(args.densenet, "convert", "--checkpoint", dataparallel, "--output", plain,
        "--state-dict-only")
    same_value(converted["state_dict"], torch.load(plain))
    print("DataParallel legacy efficient checkpoint: same torchvision weights")


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
    elif args.case == "malicious":
        case_malicious(args)
    else:
        sys.exit("unknown case " + args.case)
    print("PASS")


if __name__ == "__main__":
    main()

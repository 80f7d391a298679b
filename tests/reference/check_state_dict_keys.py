#!/usr/bin/python3
"""Checks that `densenet info --arch NAME --keys` lists exactly torchvision's state-dict keys and
shapes, in the same order, for each NAME given (torchvision architectures)."""
import argparse
import subprocess
import sys

import torchvision


def torchvision_lines(name):
    model = getattr(torchvision.models, name)()
    return ["%s %s" % (k, ",".join(map(str, v.shape))) if v.dim() else k
            for k, v in model.state_dict().items()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--densenet", required=True, help="path of the densenet program")
    parser.add_argument("archs", nargs="+")
    args = parser.parse_args()
    failed = False
    for arch in args.archs:
        ours = subprocess.run([args.densenet, "info", "--arch", arch, "--keys"], check=True,
                              capture_output=True, text=True).stdout.splitlines()
        theirs = torchvision_lines(arch)
        if ours == theirs:
            print("%s: %d keys identical to torchvision" % (arch, len(ours)))
            continue
        failed = True
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if a != b:
                print("%s: line %d differs: ours '%s', torchvision '%s'" % (arch, i + 1, a, b))
                break
        else:
            print("%s: ours has %d keys, torchvision %d" % (arch, len(ours), len(theirs)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

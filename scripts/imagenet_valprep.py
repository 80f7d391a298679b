#!/usr/bin/env python3
"""Moves ImageNet's 50,000 validation images into class folders, VAL/WNID/NAME.JPEG, so that
`densenet train --dataset imagefolder` (torchvision's ImageFolder layout) can read them. The job
of the original project's datasets/imagenet_pre/valprep.sh, from the devkit's ground truth
instead of a hard-coded list of moves:

  --devkit DIR      ILSVRC2012_devkit_t12: data/ILSVRC2012_validation_ground_truth.txt (line i:
                    the ILSVRC2012_ID of ILSVRC2012_val_%08d.JPEG, i from 1) and data/meta.mat
                    (synsets: ILSVRC2012_ID -> WNID), read with a small MAT-file reader below
                    (no SciPy needed);
  --solution CSV    or Kaggle's LOC_val_solution.csv (ImageId,PredictionString; the first word of
                    PredictionString is the WNID).

Only the standard library. Idempotent: images already in their class folder are left there.
Usage:
    python3 scripts/imagenet_valprep.py --val-dir /data/imagenet/val --devkit ILSVRC2012_devkit_t12
    python3 scripts/imagenet_valprep.py --val-dir /data/imagenet/val --solution LOC_val_solution.csv
Add --dry-run to print the moves without making them.
"""
import argparse
import csv
import os
import struct
import sys
import zlib

# MAT-file level 5 (MathWorks, "MAT-File Format", R2024a, chapter 1): data types and classes.
MI_INT8, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32 = 1, 2, 3, 4, 5, 6
MI_SINGLE, MI_DOUBLE, MI_INT64, MI_UINT64 = 7, 9, 12, 13
MI_MATRIX, MI_COMPRESSED, MI_UTF8, MI_UTF16 = 14, 15, 16, 17
NUMERIC = {MI_INT8: "b", MI_UINT8: "B", MI_INT16: "h", MI_UINT16: "H", MI_INT32: "i",
           MI_UINT32: "I", MI_SINGLE: "f", MI_DOUBLE: "d", MI_INT64: "q", MI_UINT64: "Q"}
MX_CELL, MX_STRUCT, MX_CHAR = 1, 2, 4


class MatError(Exception):
    pass


def _elements(data, endian):
    """Yields (type, payload) for each data element of `data`."""
    pos = 0
    while pos + 8 <= len(data):
        (first,) = struct.unpack_from(endian + "I", data, pos)
        if first >> 16:  # small data element: size and type share the tag, data in 4 bytes
            kind, size = first & 0xFFFF, first >> 16
            yield kind, data[pos + 4:pos + 4 + size]
            pos += 8
            continue
        kind, size = struct.unpack_from(endian + "II", data, pos)
        payload = data[pos + 8:pos + 8 + size]
        if len(payload) != size:
            raise MatError("truncated MAT file")
        yield kind, payload
        pos += 8 + size + (-size % 8 if kind != MI_COMPRESSED else 0)


def _numbers(kind, payload, endian):
    code = NUMERIC.get(kind)
    if code is None:
        raise MatError(f"unsupported MAT data type {kind}")
    return list(struct.unpack(endian + code * (len(payload) // struct.calcsize(code)), payload))


def _matrix(payload, endian):
    """A miMATRIX as (name, value): numbers as a list, chars as str, structs as a list of dicts
    (column-major), cells as a list."""
    parts = list(_elements(payload, endian))
    if not parts:  # an empty matrix
        return "", []
    flags = _numbers(parts[0][0], parts[0][1], endian)
    mx_class = flags[0] & 0xFF
    dims = _numbers(parts[1][0], parts[1][1], endian)
    name = parts[2][1].decode("latin-1")
    count = 1
    for d in dims:
        count *= d
    if mx_class == MX_STRUCT:
        (length,) = _numbers(parts[3][0], parts[3][1], endian)
        raw = parts[4][1]
        fields = [raw[i:i + length].split(b"\0", 1)[0].decode() for i in range(0, len(raw), length)]
        values = [_matrix(p, endian)[1] for kind, p in parts[5:] if kind == MI_MATRIX]
        return name, [dict(zip(fields, values[i * len(fields):(i + 1) * len(fields)]))
                      for i in range(count)]
    if mx_class == MX_CELL:
        return name, [_matrix(p, endian)[1] for kind, p in parts[3:] if kind == MI_MATRIX]
    kind, data = parts[3]
    if mx_class == MX_CHAR:
        if kind in (MI_UTF8, MI_INT8, MI_UINT8):
            return name, data.decode("utf-8")
        if kind in (MI_UINT16, MI_UTF16):
            return name, data.decode("utf-16-le" if endian == "<" else "utf-16-be")
        raise MatError(f"unsupported MAT char type {kind}")
    return name, _numbers(kind, data, endian)


def read_mat(path):
    """The variables of a level-5 MAT file (v6 or v7: compressed or not), by name."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 128:
        raise MatError(f"'{path}' is not a MAT file (too short)")
    endian = "<" if raw[126:128] == b"IM" else ">" if raw[126:128] == b"MI" else None
    if endian is None:
        raise MatError(f"'{path}' is not a level-5 MAT file (v7.3/HDF5 files are not read)")
    variables = {}
    for kind, payload in _elements(raw[128:], endian):
        if kind == MI_COMPRESSED:
            for inner_kind, inner in _elements(zlib.decompress(payload), endian):
                if inner_kind == MI_MATRIX:
                    name, value = _matrix(inner, endian)
                    variables[name] = value
        elif kind == MI_MATRIX:
            name, value = _matrix(payload, endian)
            variables[name] = value
    return variables


def _scalar(value):
    return value[0] if isinstance(value, list) else value


def labels_from_devkit(devkit):
    data = os.path.join(devkit, "data")
    meta = read_mat(os.path.join(data, "meta.mat"))
    if "synsets" not in meta:
        raise MatError(f"'{data}/meta.mat' has no 'synsets' variable")
    wnid_of = {int(_scalar(s["ILSVRC2012_ID"])): s["WNID"] for s in meta["synsets"]}
    labels = {}
    with open(os.path.join(data, "ILSVRC2012_validation_ground_truth.txt")) as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                labels[f"ILSVRC2012_val_{number:08d}"] = wnid_of[int(line)]
    return labels


def labels_from_solution(path):
    labels = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            labels[row["ImageId"]] = row["PredictionString"].split()[0]
    return labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--val-dir", required=True, help="folder of ILSVRC2012_val_*.JPEG")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--devkit", help="ILSVRC2012_devkit_t12 folder")
    source.add_argument("--solution", help="LOC_val_solution.csv")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    try:
        labels = labels_from_devkit(args.devkit) if args.devkit else labels_from_solution(
            args.solution)
    except (OSError, MatError, KeyError, ValueError) as error:
        sys.exit(f"imagenet_valprep: cannot read the ground truth: {error}")
    if not os.path.isdir(args.val_dir):
        sys.exit(f"imagenet_valprep: '{args.val_dir}' is not a folder")
    moved = already = 0
    unknown = []
    for name in sorted(os.listdir(args.val_dir)):
        path = os.path.join(args.val_dir, name)
        stem, extension = os.path.splitext(name)
        if not os.path.isfile(path) or extension.lower() not in (".jpeg", ".jpg", ".png"):
            continue
        if stem not in labels:
            unknown.append(name)
            continue
        target = os.path.join(args.val_dir, labels[stem])
        if args.dry_run:
            print(f"{path} -> {target}/{name}")
        else:
            os.makedirs(target, exist_ok=True)
            os.replace(path, os.path.join(target, name))
        moved += 1
    for stem, wnid in labels.items():
        for extension in (".JPEG", ".jpg", ".png"):
            if os.path.isfile(os.path.join(args.val_dir, wnid, stem + extension)):
                already += 1
    classes = len(set(labels.values()))
    print(f"imagenet_valprep: {'would move' if args.dry_run else 'moved'} {moved} images into "
          f"{classes} class folders; {already if not args.dry_run else 0} now in place; "
          f"{len(unknown)} not in the ground truth")
    if unknown:
        print("  not in the ground truth (left where they are): " + ", ".join(unknown[:5]) +
              (" ..." if len(unknown) > 5 else ""), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

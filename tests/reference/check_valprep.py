#!/usr/bin/python3
"""Runs scripts/imagenet_valprep.py on a tiny fake ImageNet: a devkit whose meta.mat SciPy
writes (compressed, as MATLAB v7 does, and not), and Kaggle's LOC_val_solution.csv. Checks that
every image lands in the folder of its WNID, that a second run changes nothing, and that an
image missing from the ground truth is an error naming it.

    /usr/bin/python3 tests/reference/check_valprep.py --script scripts/imagenet_valprep.py --work DIR
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import scipy.io

# ILSVRC2012_IDs are not in WNID order in the real devkit; neither are they here. 1001 is an
# inner node of the hierarchy, as the real meta.mat has 860 of them after the 1000 leaves.
SYNSETS = [(1, "n02119789", "kit fox"), (2, "n02100735", "English setter"),
           (3, "n01440764", "tench"), (1001, "n00001740", "entity")]
GROUND_TRUTH = [3, 1, 1, 2, 3, 2, 1]


def make_val(folder, count):
    os.makedirs(folder)
    for i in range(1, count + 1):
        with open(os.path.join(folder, f"ILSVRC2012_val_{i:08d}.JPEG"), "wb") as f:
            f.write(b"\xff\xd8 fake " + str(i).encode())


def check_layout(folder, wnid_of_image):
    for i, wnid in wnid_of_image.items():
        path = os.path.join(folder, wnid, f"ILSVRC2012_val_{i:08d}.JPEG")
        assert os.path.isfile(path), f"missing {path}"
        with open(path, "rb") as f:
            assert f.read().endswith(b" " + str(i).encode()), f"{path} holds another image"
    loose = [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]
    assert not loose, f"left in place: {loose}"


def run(script, *args, expect=0):
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
    return result.stdout + result.stderr


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--script", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    wnid = {sid: w for sid, w, _ in SYNSETS}
    expected = {i + 1: wnid[sid] for i, sid in enumerate(GROUND_TRUTH)}
    synsets = np.zeros((len(SYNSETS), 1), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"),
                                                ("words", "O"), ("children", "O")])
    for row, (sid, w, words) in enumerate(SYNSETS):
        synsets[row, 0] = (np.array([[sid]], dtype=np.uint16 if row % 2 else np.float64), w,
                           words, np.zeros((1, 0)))
    for compressed in (True, False):
        devkit = os.path.join(args.work, f"devkit_{compressed}")
        os.makedirs(os.path.join(devkit, "data"))
        scipy.io.savemat(os.path.join(devkit, "data", "meta.mat"), {"synsets": synsets},
                         do_compression=compressed)
        with open(os.path.join(devkit, "data", "ILSVRC2012_validation_ground_truth.txt"), "w") as f:
            f.write("\n".join(str(s) for s in GROUND_TRUTH) + "\n")
        val = os.path.join(args.work, f"val_{compressed}")
        make_val(val, len(GROUND_TRUTH))
        out = run(args.script, "--val-dir", val, "--devkit", devkit)
        assert "moved 7 images into 3 class folders" in out, out
        check_layout(val, expected)
        out = run(args.script, "--val-dir", val, "--devkit", devkit)  # idempotent
        assert "moved 0 images" in out and "7 now in place" in out, out
        check_layout(val, expected)

    solution = os.path.join(args.work, "LOC_val_solution.csv")
    with open(solution, "w") as f:
        f.write("ImageId,PredictionString\n")
        for i, w in expected.items():
            f.write(f"ILSVRC2012_val_{i:08d},{w} 10 20 30 40 {w} 1 2 3 4\n")
    val = os.path.join(args.work, "val_csv")
    make_val(val, len(GROUND_TRUTH) + 1)  # one image the solution does not name
    out = run(args.script, "--val-dir", val, "--solution", solution, expect=1)
    assert "ILSVRC2012_val_00000008.JPEG" in out and "1 not in the ground truth" in out, out
    check_layout_without = {k: v for k, v in expected.items()}
    for i, w in check_layout_without.items():
        assert os.path.isfile(os.path.join(val, w, f"ILSVRC2012_val_{i:08d}.JPEG"))
    out = run(args.script, "--val-dir", val, "--devkit", os.path.join(args.work, "nothing"),
              expect=1)
    assert "cannot read the ground truth" in out, out
    print("ok: valprep sorted the fake validation set from meta.mat (compressed and not) and "
          "from LOC_val_solution.csv")


if __name__ == "__main__":
    main()

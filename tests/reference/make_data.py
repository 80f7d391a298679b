#!/usr/bin/python3
"""Writes small datasets in every format the loader reads, broken copies of them, and what
torchvision makes of them, for tests/data/test_datasets.cpp, test_transforms.cpp and
test_loader.cpp.

OUT/
  fashion/        {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz  (gzipped IDX)
  mnist/raw/      the same names, not gzipped (torchvision's MNIST/raw layout)
  bad_magic/      a train image file whose magic is 0x00000804
  bad_count/      3 more labels than images
  cifar10/cifar-10-batches-bin/  data_batch_{1..5}.bin, test_batch.bin, batches.meta.txt
  cifar100/       train.bin, test.bin (coarse and fine labels), fine_label_names.txt
  cifar_truncated/  data_batch_3.bin cut mid-record
  folder/{train,val}/CLASS/...   JPEGs and PNGs, a nested folder, a text file (ignored) and a
                                 corrupt .jpg (skipped by the loader)
  jpegs/          JPEGs with 4:4:4, 4:2:2 and 4:2:0 chroma and a grey one (partial decoding)
  empty_folder/train/            no class folders
  empty_class/train/{a,b}        b holds only a text file
  expected.safetensors  the images/labels the C++ readers must produce, and torchvision
                        ImageFolder's sample order (labels, decoded pixels)
  transforms.safetensors  torchvision outputs for fixed crop boxes, flips, jitter factors and
                          lighting alphas (the parameters are in the tensor names' comments
                          below and in test_transforms.cpp)

Run with Debian's python3-torchvision:
    /usr/bin/python3 tests/reference/make_data.py --out build/tests/data
"""
import argparse
import gzip
import os
import shutil
import struct
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import datasets, transforms
import torchvision.transforms.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

SEED = 20261130


def idx_images(images):
    n, h, w = images.shape
    return struct.pack(">IIII", 0x803, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + labels.astype(np.uint8).tobytes()


def write(path, data, gz=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if gz:
        with gzip.open(path + ".gz", "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def cifar_records(images, labels, coarse=None):
    out = bytearray()
    for i in range(len(labels)):
        if coarse is not None:
            out.append(int(coarse[i]))
        out.append(int(labels[i]))
        out += images[i].transpose(2, 0, 1).tobytes()  # R plane, G plane, B plane
    return bytes(out)


def smooth_rgb(width, height, rng):
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127 + 120 * np.sin(x / 11.0) * np.cos(y / 7.0)
    g = 255 * x / max(width - 1, 1)
    b = 255 * ((x + y) % 32) / 31.0
    image = np.stack([r, g, b], axis=-1) + rng.normal(0, 10, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    out = parser.parse_args().out
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    rng = np.random.default_rng(SEED)
    expected = {}

    # IDX: fashion gzipped, mnist plain under raw/.
    for name, folder, gz, n_train, n_test in [("fashion", "fashion", True, 30, 12),
                                              ("mnist", "mnist/raw", False, 25, 10)]:
        for prefix, n in [("train", n_train), ("t10k", n_test)]:
            images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            labels = rng.integers(0, 10, n, dtype=np.uint8)
            write(f"{out}/{folder}/{prefix}-images-idx3-ubyte", idx_images(images), gz)
            write(f"{out}/{folder}/{prefix}-labels-idx1-ubyte", idx_labels(labels), gz)
            expected[f"{name}_{prefix}_images"] = torch.from_numpy(images[..., None].copy())
            expected[f"{name}_{prefix}_labels"] = torch.from_numpy(labels.astype(np.int64))
    # torchvision's own IDX reader agrees with what we wrote.
    check = datasets.mnist.read_image_file(f"{out}/mnist/raw/train-images-idx3-ubyte")
    assert torch.equal(check, expected["mnist_train_images"][..., 0])

    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    bad = bytearray(idx_images(images))
    bad[3] = 0x04
    write(f"{out}/bad_magic/train-images-idx3-ubyte", bytes(bad))
    write(f"{out}/bad_magic/train-labels-idx1-ubyte", idx_labels(labels))
    write(f"{out}/bad_count/train-images-idx3-ubyte", idx_images(images))
    write(f"{out}/bad_count/train-labels-idx1-ubyte",
          idx_labels(np.concatenate([labels, labels[:3]])))

    # CIFAR binary.
    base = f"{out}/cifar10/cifar-10-batches-bin"
    train_images, train_labels = [], []
    for i in range(1, 6):
        images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, 3, dtype=np.uint8)
        write(f"{base}/data_batch_{i}.bin", cifar_records(images, labels))
        train_images.append(images)
        train_labels.append(labels)
        write(f"{out}/cifar_truncated/data_batch_{i}.bin",
              cifar_records(images, labels)[:-100 if i == 3 else None])
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 4, dtype=np.uint8)
    write(f"{base}/test_batch.bin", cifar_records(images, labels))
    with open(f"{base}/batches.meta.txt", "w") as f:
        f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                           "horse", "ship", "truck"]) + "\n\n")
    expected["cifar10_train_images"] = torch.from_numpy(np.concatenate(train_images))
    expected["cifar10_train_labels"] = torch.from_numpy(
        np.concatenate(train_labels).astype(np.int64))
    expected["cifar10_test_images"] = torch.from_numpy(images)
    expected["cifar10_test_labels"] = torch.from_numpy(labels.astype(np.int64))
    for split, n in [("train", 7), ("test", 3)]:
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        fine = rng.integers(0, 100, n, dtype=np.uint8)
        coarse = rng.integers(0, 20, n, dtype=np.uint8)
        write(f"{out}/cifar100/{split}.bin", cifar_records(images, fine, coarse))
        expected[f"cifar100_{split}_images"] = torch.from_numpy(images)
        expected[f"cifar100_{split}_labels"] = torch.from_numpy(fine.astype(np.int64))
    with open(f"{out}/cifar100/fine_label_names.txt", "w") as f:
        f.write("\n".join(f"fine{i:02d}" for i in range(100)) + "\n")

    # Image folders. Class names chosen so that sorting matters (upper case sorts first).
    for split, classes in [("train", ["apple", "Zebra", "bee"]), ("val", ["apple", "Zebra", "bee"])]:
        for k, cls in enumerate(classes):
            folder = f"{out}/folder/{split}/{cls}"
            os.makedirs(f"{folder}/nested", exist_ok=True)
            for i in range(3 if split == "train" else 2):
                w, h = int(rng.integers(40, 90)), int(rng.integers(30, 70))
                image = Image.fromarray(smooth_rgb(w, h, rng))
                if (i + k) % 2:
                    image.save(f"{folder}/img{i}.png")
                else:
                    image.save(f"{folder}/IMG{i}.JPG", quality=90)
            Image.fromarray(smooth_rgb(50, 40, rng)).convert("L").save(f"{folder}/nested/deep.png")
            with open(f"{folder}/notes.txt", "w") as f:
                f.write("not an image, and not named like one\n")
        with open(f"{out}/folder/{split}/bee/corrupt.jpg", "wb") as f:
            f.write(b"this is not a JPEG")
    for split in ["train", "val"]:
        folder = datasets.ImageFolder(f"{out}/folder/{split}")
        expected[f"folder_{split}_labels"] = torch.tensor(folder.targets, dtype=torch.int64)
        for i, (path, _) in enumerate(folder.samples):
            if path.endswith("corrupt.jpg"):
                expected[f"folder_{split}_corrupt_index"] = torch.tensor([i])
                continue
            with Image.open(path) as opened:
                expected[f"folder_{split}_image{i}"] = torch.from_numpy(
                    np.asarray(opened.convert("RGB")).copy())
        with open(f"{out}/folder/{split}_classes.txt", "w") as f:
            f.write("\n".join(folder.classes) + "\n")
    # JPEGs of every chroma subsampling, odd sizes, and grey, for the partial decoder.
    os.makedirs(f"{out}/jpegs")
    for sub in ["4:4:4", "4:2:2", "4:2:0"]:
        Image.fromarray(smooth_rgb(203, 151, rng)).save(
            f"{out}/jpegs/s{sub.replace(':', '')}.jpg", quality=85, subsampling=sub)
    Image.fromarray(smooth_rgb(97, 131, rng)).convert("L").save(f"{out}/jpegs/gray.jpg")
    os.makedirs(f"{out}/empty_folder/train")
    os.makedirs(f"{out}/empty_class/train/a")
    os.makedirs(f"{out}/empty_class/train/b")
    Image.fromarray(smooth_rgb(20, 20, rng)).save(f"{out}/empty_class/train/a/x.png")
    with open(f"{out}/empty_class/train/b/readme.txt", "w") as f:
        f.write("no images here\n")
    safetensors_io.save(f"{out}/expected.safetensors", expected)

    # Transforms for fixed parameters.
    t = {}
    gray = Image.fromarray(expected["fashion_train_images"][0, ..., 0].numpy(), "L")
    rgb32 = Image.fromarray(expected["cifar10_train_images"][0].numpy(), "RGB")
    photo = Image.fromarray(smooth_rgb(200, 150, rng), "RGB")
    t["gray"] = torch.from_numpy(np.asarray(gray).copy()[..., None])
    t["rgb32"] = torch.from_numpy(np.asarray(rgb32).copy())
    t["photo"] = torch.from_numpy(np.asarray(photo).copy())

    def padcrop(image, top, left, size, flip, mean, std):
        image = F.crop(F.pad(image, 4), top, left, size, size)  # RandomCrop(size, padding=4)
        if flip:
            image = F.hflip(image)
        return F.normalize(F.to_tensor(image), mean, std)

    fmnist = ([0.2860], [0.3530])
    cifar10 = ([0.49139968, 0.48215841, 0.44653091], [0.24703223, 0.24348513, 0.26158784])
    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    t["gray_padcrop_1_7_flip"] = padcrop(gray, 1, 7, 28, True, *fmnist)
    t["gray_padcrop_8_0"] = padcrop(gray, 8, 0, 28, False, *fmnist)
    t["rgb32_padcrop_0_8"] = padcrop(rgb32, 0, 8, 32, False, *cifar10)
    t["rgb32_padcrop_8_3_flip"] = padcrop(rgb32, 8, 3, 32, True, *cifar10)
    # F.resized_crop(img, top, left, height, width, size) then hflip, as uint8 pixels.
    for name, (top, left, h, w, size, flip) in {
            "photo_rrc_10_20_100_80_64_flip": (10, 20, 100, 80, 64, True),
            "photo_rrc_0_0_150_200_224": (0, 0, 150, 200, 224, False),
            "photo_rrc_37_101_13_17_32": (37, 101, 13, 17, 32, False)}.items():
        image = F.resized_crop(photo, top, left, h, w, [size, size],
                               transforms.InterpolationMode.BILINEAR)
        if flip:
            image = F.hflip(image)
        t[name] = torch.from_numpy(np.asarray(image).copy())
    for factor in [0.6, 1.3]:
        tag = str(factor).replace(".", "p")
        t[f"photo_brightness_{tag}"] = torch.from_numpy(
            np.asarray(F.adjust_brightness(photo, factor)).copy())
    for factor in [0.5, 1.4]:
        tag = str(factor).replace(".", "p")
        t[f"photo_contrast_{tag}"] = torch.from_numpy(
            np.asarray(F.adjust_contrast(photo, factor)).copy())
    for factor in [0.2, 1.7]:
        tag = str(factor).replace(".", "p")
        t[f"photo_saturation_{tag}"] = torch.from_numpy(
            np.asarray(F.adjust_saturation(photo, factor)).copy())
    # fb.resnet.torch Lighting(alphastd) with a fixed alpha, on ToTensor's output.
    eigval = torch.tensor([0.2175, 0.0188, 0.0045], dtype=torch.float64)
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140],
                           [-0.5836, -0.6948, 0.4203]], dtype=torch.float64)
    alpha = torch.tensor([0.05, -0.1, 0.02], dtype=torch.float64)
    shift = (eigvec * (alpha * eigval).view(1, 3)).sum(1).float()
    t["photo_lighting"] = F.to_tensor(photo) + shift.view(3, 1, 1)
    # Evaluation: imagefolder at input 64 = Resize(64 * 256 // 224 = 73) + CenterCrop(64);
    # CIFAR at 32 = ToTensor + Normalize.
    t["photo_eval_64"] = F.normalize(
        F.to_tensor(F.center_crop(F.resize(photo, 73), 64)), *imagenet)
    t["rgb32_eval"] = F.normalize(F.to_tensor(rgb32), *cifar10)
    safetensors_io.save(f"{out}/transforms.safetensors", t)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

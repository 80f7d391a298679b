#!/usr/bin/python3
"""Writes images and what PIL/torchvision make of them, for tests/test_image.cpp and
check_predict.py.

For each good image NAME.{png,jpg}: NAME.safetensors with
  decoded     uint8 (H, W, 3): PIL's Image.open(f).convert("RGB")
  resized     uint8: torchvision's Resize(256) (bilinear) of that PIL image
  cropped     uint8: CenterCrop(128) of the decoded image (zero-padded when smaller)
  input       float32 (3, 224, 224): Resize(256), CenterCrop(224), ToTensor, Normalize(ImageNet)
  input_luma  float32 (1, 28, 28): convert("L"), Resize(32), CenterCrop(28), ToTensor,
              Normalize(0.5, 0.25)
Bad images (truncated, corrupted, other formats, CMYK) are written beside them.

Run with Debian's python3-torchvision (and its python3-pil):
    /usr/bin/python3 tests/reference/make_images.py --out build/tests/images
"""
import argparse
import io
import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

SEED = 20261125


def synthetic(width, height, rng):
    """Smooth gradients plus noise: resampling has something to get right everywhere."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127 + 120 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * x / max(width - 1, 1)
    b = 255 * ((x + y) % 64) / 63.0
    image = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


IMAGENET = transforms.Compose([
    transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
LUMA = transforms.Compose([
    transforms.Resize(32), transforms.CenterCrop(28), transforms.ToTensor(),
    transforms.Normalize([0.5], [0.25])])


def expected(path):
    with Image.open(path) as opened:
        rgb = opened.convert("RGB")
        luma = opened.convert("L")
    return {
        "decoded": torch.from_numpy(np.asarray(rgb).copy()),
        "resized": torch.from_numpy(np.asarray(transforms.Resize(256)(rgb)).copy()),
        "cropped": torch.from_numpy(np.asarray(transforms.CenterCrop(128)(rgb)).copy()),
        "input": IMAGENET(rgb),
        "input_luma": LUMA(luma),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731

    landscape = synthetic(333, 250, rng)
    landscape.save(out("rgb.png"))
    synthetic(150, 401, rng).save(out("tall.png"))
    synthetic(97, 61, rng).save(out("small.png"))  # smaller than the crop after no resize
    landscape.convert("L").save(out("gray.png"))
    landscape.convert("P", palette=Image.ADAPTIVE, colors=64).save(out("palette.png"))
    rgba = landscape.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (250, 333), dtype=np.uint8)))
    rgba.save(out("rgba.png"))
    landscape.save(out("photo.jpg"), quality=90)
    landscape.convert("L").save(out("gray.jpg"), quality=85)
    synthetic(260, 300, rng).save(out("progressive.jpg"), quality=80, progressive=True)
    for name in ["rgb.png", "tall.png", "small.png", "gray.png", "palette.png", "rgba.png",
                 "photo.jpg", "gray.jpg", "progressive.jpg"]:
        safetensors_io.save(out(name.replace(".", "_") + ".safetensors"), expected(out(name)))

    # Bad images.
    for name in ["photo.jpg", "rgb.png"]:
        data = open(out(name), "rb").read()
        with open(out("truncated_" + name), "wb") as f:
            f.write(data[: len(data) // 2])
    data = bytearray(open(out("rgb.png"), "rb").read())
    data[len(data) // 2] ^= 0x55  # inside IDAT: its CRC no longer matches
    open(out("corrupted.png"), "wb").write(bytes(data))
    landscape.save(out("image.gif"))
    landscape.convert("CMYK").save(out("cmyk.jpg"))
    open(out("empty.png"), "wb").close()
    buffer = io.BytesIO()
    landscape.save(buffer, format="BMP")
    open(out("image.bmp"), "wb").write(buffer.getvalue())


if __name__ == "__main__":
    main()

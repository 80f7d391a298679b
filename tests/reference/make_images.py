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
Bad images (truncated, corrupted, other formats) are written beside them.

The PNG matrix (png_writer.py writes what PIL cannot): png_KIND[_trns][_interlaced].png for every
colour type and bit depth of the PNG specification, with NAME.safetensors holding
  rgb   uint8 (H, W, 3): PIL's convert("RGB")
  luma  uint8 (H, W): PIL's convert("L")
CMYK JPEGs as PIL writes them (cmyk.jpg), with an Adobe APP14 marker (cmyk_adobe.jpg) and as YCCK
(ycck.jpg: APP14 transform 2, so that libjpeg converts YCCK to CMYK) get the same two tensors.

Run with Debian's python3-torchvision (and its python3-pil):
    /usr/bin/python3 tests/reference/make_images.py --out build/tests/images
"""
import argparse
import io
import os
import struct
import sys
import warnings

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import png_writer  # noqa: E402
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


# (name, colour type, bit depth) of every kind the PNG specification allows (section 11.2.2).
PNG_KINDS = [("grey1", png_writer.GREY, 1), ("grey2", png_writer.GREY, 2),
             ("grey4", png_writer.GREY, 4), ("grey8", png_writer.GREY, 8),
             ("grey16", png_writer.GREY, 16), ("greyalpha8", png_writer.GREY_ALPHA, 8),
             ("greyalpha16", png_writer.GREY_ALPHA, 16), ("rgb8", png_writer.RGB, 8),
             ("rgb16", png_writer.RGB, 16), ("rgba8", png_writer.RGBA, 8),
             ("rgba16", png_writer.RGBA, 16), ("palette1", png_writer.PALETTE, 1),
             ("palette2", png_writer.PALETTE, 2), ("palette4", png_writer.PALETTE, 4),
             ("palette8", png_writer.PALETTE, 8)]


def pil_answer(path):
    # PIL warns that palette files with tRNS should be converted to RGBA; convert("RGB") is
    # what is asked of it here.
    warnings.filterwarnings("ignore", "Palette images with Transparency")
    with Image.open(path) as opened:
        return {"rgb": torch.from_numpy(np.asarray(opened.convert("RGB")).copy()),
                "luma": torch.from_numpy(np.asarray(opened.convert("L")).copy())}


def write_png_matrix(out, rng):
    """Each kind with and without tRNS, progressive and interlaced, 13x11 pixels (odd, so that
    packed rows end mid-byte and Adam7's passes are partial). 16-bit samples are half small
    (below 256, where PIL's clamp of 16-bit grey and a high byte differ most) and half anywhere.
    Palettes are one entry short of the depth's range, and a few pixels use the missing index."""
    width, height = 13, 11
    for name, color, depth in PNG_KINDS:
        channels = png_writer.CHANNELS[color]
        samples = rng.integers(0, 1 << depth, (height, width, channels))
        if depth == 16:
            samples[::2] = rng.integers(0, 300, samples[::2].shape)
        palette = None
        if color == png_writer.PALETTE:
            entries = max(2, (1 << depth) - 1)
            palette = rng.integers(0, 256, (entries, 3))
            samples %= entries
            samples[0, :3] = (1 << depth) - 1  # past PLTE when entries < 2^depth
        for trns in [False, True]:
            chunk = None
            if trns and color == png_writer.PALETTE:
                chunk = bytes(rng.integers(0, 256, len(palette) - 1).astype(np.uint8))
            elif trns and color in (png_writer.GREY, png_writer.RGB):
                chunk = struct.pack(">" + "H" * channels, *map(int, samples[0, 0]))
            elif trns:  # forbidden with an alpha channel; decoders must ignore it
                chunk = b"\x00\x05"
            for interlace in [False, True]:
                stem = "png_" + name + ("_trns" if trns else "") + \
                       ("_interlaced" if interlace else "")
                with open(out(stem + ".png"), "wb") as f:
                    f.write(png_writer.encode(samples, color, depth, palette, chunk, interlace))
                safetensors_io.save(out(stem + ".safetensors"), pil_answer(out(stem + ".png")))
    # The example: every sample 30000 (PIL: 255; its high byte would be 117).
    with open(out("png_grey16_30000.png"), "wb") as f:
        f.write(png_writer.encode(np.full((4, 5, 1), 30000), png_writer.GREY, 16))
    safetensors_io.save(out("png_grey16_30000.safetensors"), pil_answer(out("png_grey16_30000.png")))


def with_adobe_marker(jpeg, transform):
    """Inserts an Adobe APP14 marker after SOI: transform 0 means CMYK, 2 YCCK (libjpeg's
    jdmarker.c reads it so)."""
    app14 = b"\xff\xee" + struct.pack(">H", 14) + b"Adobe" + struct.pack(">HHHB", 100, 0, 0,
                                                                         transform)
    return jpeg[:2] + app14 + jpeg[2:]


def write_cmyk_jpegs(out, image):
    buffer = io.BytesIO()
    image.convert("CMYK").save(buffer, format="JPEG", quality=90)
    files = {"cmyk.jpg": buffer.getvalue(), "cmyk_adobe.jpg": with_adobe_marker(buffer.getvalue(), 0),
             "ycck.jpg": with_adobe_marker(buffer.getvalue(), 2)}
    for name, data in files.items():
        with open(out(name), "wb") as f:
            f.write(data)
        answer = pil_answer(out(name))
        with Image.open(out(name)) as opened:
            assert opened.mode == "CMYK", name
        safetensors_io.save(out(name.replace(".", "_") + ".safetensors"), answer)


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

    write_png_matrix(out, rng)
    write_cmyk_jpegs(out, synthetic(67, 45, rng))

    # Bad images.
    for name in ["photo.jpg", "rgb.png"]:
        data = open(out(name), "rb").read()
        with open(out("truncated_" + name), "wb") as f:
            f.write(data[: len(data) // 2])
    data = bytearray(open(out("rgb.png"), "rb").read())
    data[len(data) // 2] ^= 0x55  # inside IDAT: its CRC no longer matches
    open(out("corrupted.png"), "wb").write(bytes(data))
    landscape.save(out("image.gif"))
    open(out("empty.png"), "wb").close()
    buffer = io.BytesIO()
    landscape.save(buffer, format="BMP")
    open(out("image.bmp"), "wb").write(buffer.getvalue())


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""`densenet predict --json --logits` against torchvision on the same images and weights.

    check_predict.py --densenet BIN --weights densenet121_legacy.pth --images DIR

Python loads the legacy weights as torchvision does, applies torchvision's ImageNet evaluation
transform to PIL images and takes the softmax top-5; the C++ output must name the same classes
(up to ties closer than 1e-5) with probabilities within 1e-5, and its --logits every class's
logit within 1e-4 of the logits' scale (the parity tests' bound; both run the same LibTorch
kernels). The text form of --logits prints the same float32 values as the JSON form. A
1-channel model (luma input, --resize 32 --crop 28) is checked the same way, and an unreadable
image is reported on stderr while the others are still classified (exit code 1).
"""
import argparse
import collections
import json
import os
import re
import subprocess

import torch
import torchvision
from PIL import Image
from torchvision import transforms

# The last six were misread or refused before (issue 13): 16-bit grey, palette + tRNS, CMYK.
IMAGES = ["photo.jpg", "palette.png", "tall.png", "png_grey16_30000.png", "png_grey16.png",
          "png_palette8_trns.png", "png_rgb16_interlaced.png", "cmyk_adobe.jpg", "ycck.jpg"]


def torchvision_state(path):
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    state = collections.OrderedDict()
    for key, value in torch.load(path).items():
        match = pattern.match(key)
        state[match.group(1) + match.group(2) if match else key] = value
    return state


def compare(cpp_lines, model, transform, mode, files, topk):
    with torch.no_grad():
        for line, path in zip(cpp_lines, files):
            cpp = json.loads(line)
            assert cpp["file"] == path, (cpp["file"], path)
            with Image.open(path) as image:
                x = transform(image.convert(mode)).unsqueeze(0)
            logits = model(x)[0]
            probs = torch.softmax(logits, 0)
            assert len(cpp["topk"]) == topk
            theirs = torch.tensor(cpp["logits"], dtype=torch.float64)
            assert theirs.shape == logits.shape, (theirs.shape, logits.shape)
            scale = max(1.0, logits.abs().max().item())
            error = (theirs - logits.double()).abs().max().item()
            assert error <= 1e-4 * scale, ("logits", error, scale)
            for rank, entry in enumerate(cpp["topk"]):
                expected = probs.topk(topk).values[rank].item()
                assert abs(entry["prob"] - probs[entry["index"]].item()) <= 1e-5, entry
                assert abs(entry["prob"] - expected) <= 1e-5, (rank, entry, expected)
            print("%s: top-%d %s, %d logits (largest error %.2g) ok" % (
                os.path.basename(path), topk, [e["index"] for e in cpp["topk"]], len(theirs),
                error))


def check_text_logits(args, path, json_logits):
    """The text form's 'logits:' line holds the JSON form's float32 values exactly."""
    result = subprocess.run([args.densenet, "predict", "--arch", "densenet121", "--weights",
                             args.weights, "--logits", path],
                            capture_output=True, text=True, check=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("  logits: ")]
    assert len(lines) == 1, result.stdout
    text = torch.tensor([float(v) for v in lines[0].split()[1:]], dtype=torch.float32)
    assert torch.equal(text, torch.tensor(json_logits, dtype=torch.float32)), "text != JSON"
    print("text --logits: the same %d float32 values as --json" % len(text))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--densenet", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--images", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    files = [os.path.join(args.images, name) for name in IMAGES]

    model = torchvision.models.densenet121()
    model.load_state_dict(torchvision_state(args.weights), strict=True)
    model.eval()
    result = subprocess.run([args.densenet, "predict", "--arch", "densenet121", "--weights",
                             args.weights, "--json", "--logits", "--topk", "5"] + files,
                            capture_output=True, text=True, check=True)
    check_text_logits(args, files[0], json.loads(result.stdout.splitlines()[0])["logits"])
    compare(result.stdout.splitlines(), model, transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]), "RGB", files, 5)

    # A small 1-channel model, saved by Python in the zip format.
    torch.manual_seed(3)
    small = torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16,
                                        bn_size=2, num_classes=10)
    small.features.conv0 = torch.nn.Conv2d(1, 16, kernel_size=7, stride=2, padding=3, bias=False)
    small.eval()
    weights = os.path.join(args.images, "luma_model.pth")
    torch.save(small.state_dict(), weights)
    result = subprocess.run([args.densenet, "predict", "--arch", "densenet121", "--growth-rate",
                             "8", "--block-config", "2,2", "--num-init-features", "16",
                             "--bn-size", "2", "--num-classes", "10", "--in-channels", "1",
                             "--input-size", "224", "--weights", weights, "--resize", "32",
                             "--crop", "28", "--mean", "0.5", "--std", "0.25", "--topk", "3",
                             "--json", "--logits"] + files,
                            capture_output=True, text=True, check=True)
    compare(result.stdout.splitlines(), small, transforms.Compose([
        transforms.Resize(32), transforms.CenterCrop(28), transforms.ToTensor(),
        transforms.Normalize([0.5], [0.25])]), "L", files, 3)

    broken = os.path.join(args.images, "truncated_photo.jpg")
    result = subprocess.run([args.densenet, "predict", "--arch", "densenet121", "--weights",
                             args.weights, "--json", broken, files[0]],
                            capture_output=True, text=True)
    assert result.returncode == 1, result.returncode
    assert "truncated_photo.jpg" in result.stderr and "Premature end" in result.stderr
    assert len(result.stdout.splitlines()) == 1 and files[0] in result.stdout
    print("unreadable image reported, the rest classified, exit code 1")
    print("PASS")


if __name__ == "__main__":
    main()

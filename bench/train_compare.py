#!/usr/bin/python3
"""Time to accuracy, `densenet train` against PyTorch, in one run (docs/BENCHMARKS.md, "Training").

Trains configs/fashion-mnist.yaml (or --config) with `densenet train`, then the same model,
batch, schedule, augmentation, threads and loader workers with bench/train_pytorch.py (the PyTorch
of the Python that runs this script, or --python: Debian's 1.13 as /usr/bin/python3, pip's 2.11
as ~/.cache/densenet/torch-2.11.0/bin/python; torch DataLoader, torchvision-style model), one
after the other on the same machine, and prints the ratios the training issue's targets are
stated in:

  epoch time  = our mean training seconds per epoch / PyTorch's (evaluation excluded)
  time to X%  = our wall-clock seconds until the test top-1 first reaches X% / PyTorch's
                (evaluation included; a side that never reaches X% has no time)

Both sides' per-epoch rows and a summary go to --out (a folder) as JSON, with the commands.

    /usr/bin/python3 bench/train_compare.py --densenet build/densenet --out /tmp/compare
    /usr/bin/python3 bench/train_compare.py --densenet build/densenet --out /tmp/c --epochs 1 \
        --max-train-samples 2000 --max-eval-samples 1000          # a quick check of the script
    ~/.cache/densenet/torch-2.11.0/bin/python bench/train_compare.py --densenet build/densenet \
        --out /tmp/c211 --amp bf16 --channels-last               # PyTorch 2.11, both sides bf16
"""
import argparse
import csv
import datetime
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--densenet", default=os.path.join(ROOT, "build", "densenet"))
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "fashion-mnist.yaml"))
    p.add_argument("--out", required=True, help="folder for both runs and the summary")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=0, help="0 = the config's")
    p.add_argument("--max-train-samples", type=int, default=0)
    p.add_argument("--max-eval-samples", type=int, default=0)
    p.add_argument("--target-accuracy", type=float, default=93.0)
    p.add_argument("--python", default=sys.executable,
                   help="the Python whose PyTorch trains the PyTorch side (default: this one)")
    p.add_argument("--amp", default="none", choices=["none", "bf16"],
                   help="bf16: both sides train under CPU autocast (densenet train --amp bf16)")
    p.add_argument("--channels-last", action="store_true",
                   help="the PyTorch side in torch.channels_last (ours keeps the config's efficient mode)")
    p.add_argument("--skip", choices=["densenet", "pytorch"], default=None,
                   help="run one side only (the other's JSON must already be in --out)")
    args = p.parse_args()
    if not os.access(args.densenet, os.X_OK):
        p.error("--densenet '%s' is not an executable; build first" % args.densenet)
    if not os.path.isfile(args.config):
        p.error("--config '%s' does not exist" % args.config)
    return args


def run_densenet(args, run_dir):
    command = [args.densenet, "train", "--config", args.config, "--output-dir", run_dir, "--force",
               "--threads", str(args.threads), "--amp", args.amp]
    for flag, value in (("--epochs", args.epochs), ("--max-train-samples", args.max_train_samples),
                        ("--max-eval-samples", args.max_eval_samples)):
        if value:
            command += [flag, str(value)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    # The effective configuration, as the run wrote it.
    config = {}
    with open(os.path.join(run_dir, "config.yaml")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if ":" in line:
                key, value = line.split(":", 1)
                config[key.strip()] = value.strip()
    epochs = []
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        for row in csv.DictReader(f):
            # Columns a run does not fill (loss_scale without fp16, the EMA's without --model-ema)
            # are empty.
            epochs.append({k: float(v) if v != "" else None for k, v in row.items()})
    return command, config, epochs


def run_pytorch(args, config, json_path):
    blocks = {"densenet-bc-40": "6,6,6", "densenet-bc-100": "16,16,16"}
    if config["arch"] not in blocks or config.get("block-config", "~") not in ("~", "null", "[]"):
        sys.exit("train_compare.py: bench/train_pytorch.py builds DenseNet-BC-40 and -100 only; "
                 "the config has arch %s" % config["arch"])
    command = [args.python, os.path.join(HERE, "train_pytorch.py"),
               "--block-config", blocks[config["arch"]], "--threads", str(args.threads),
               "--workers", config["workers"], "--batch-size", config["batch-size"],
               "--test-batch-size", config["test-batch-size"], "--epochs", config["epochs"],
               "--lr", config["lr"], "--lr-type", config["lr-type"],
               "--momentum", config["momentum"], "--nesterov", "1" if config["nesterov"] == "true" else "0",
               "--weight-decay", config["weight-decay"], "--crop-padding", config["crop-padding"],
               "--hflip", config["hflip"], "--seed", config["seed"],
               "--target-accuracy", str(args.target_accuracy), "--json", json_path, "--amp", args.amp]
    command += ["--channels-last"] if args.channels_last else []
    if config["augment"] != "true":
        command[command.index("--hflip") + 1] = "0"
    for flag, value in (("--max-train-samples", args.max_train_samples),
                        ("--max-eval-samples", args.max_eval_samples)):
        if value:
            command += [flag, str(value)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    with open(json_path) as f:
        return command, json.load(f)


def time_to(epochs, target):
    for e in epochs:
        if e["eval_top1"] >= target:
            return e["elapsed_seconds"], int(e["epoch"])
    return None, None


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    ours_dir = os.path.join(args.out, "densenet")
    summary_path = os.path.join(args.out, "compare.json")
    torch_json = os.path.join(args.out, "pytorch.json")
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    ours_path = os.path.join(args.out, "densenet.json")
    if args.skip == "densenet":
        with open(ours_path) as f:
            saved = json.load(f)
        ours_command, config, ours = saved["command"], saved["config"], saved["epochs"]
    else:
        ours_command, config, ours = run_densenet(args, ours_dir)
        with open(ours_path, "w") as f:
            json.dump(dict(command=ours_command, config=config, epochs=ours), f, indent=1)
    if args.skip == "pytorch":
        with open(torch_json) as f:
            theirs = json.load(f)
        torch_command = theirs.get("command", [])
    else:
        torch_command, theirs = run_pytorch(args, config, torch_json)
    their_epochs = theirs["epochs"]
    ours_epoch = sum(e["epoch_seconds"] for e in ours) / len(ours)
    their_epoch = theirs["mean_epoch_seconds"]
    ours_t, ours_e = time_to(ours, args.target_accuracy)
    their_t, their_e = time_to(their_epochs, args.target_accuracy)
    summary = dict(
        tool="bench/train_compare.py", started=started, densenet_command=ours_command,
        pytorch_command=torch_command, torch=theirs["torch"], threads=args.threads, amp=args.amp,
        pytorch_channels_last=args.channels_last,
        target_accuracy=args.target_accuracy,
        densenet=dict(mean_epoch_seconds=ours_epoch, time_to_target_seconds=ours_t, target_epoch=ours_e,
                      best_top1=max(e["eval_top1"] for e in ours),
                      images_per_second=sum(e["images_per_second"] for e in ours) / len(ours),
                      data_wait_share=max(e["data_wait_share"] for e in ours)),
        pytorch=dict(mean_epoch_seconds=their_epoch, time_to_target_seconds=their_t, target_epoch=their_e,
                     best_top1=theirs["best_top1"],
                     images_per_second=sum(e["images_per_second"] for e in their_epochs) / len(their_epochs),
                     data_wait_share=max(e["data_wait_share"] for e in their_epochs)),
        epoch_time_ratio=ours_epoch / their_epoch,
        time_to_target_ratio=(ours_t / their_t) if ours_t and their_t else None)
    with open(summary_path + ".part", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(summary_path + ".part", summary_path)
    print("\n| | densenet | PyTorch %s%s | ratio |" % (theirs["torch"], ", channels_last" if args.channels_last else ""))
    print("|---|---:|---:|---:|")
    print("| training s/epoch | %.1f | %.1f | **%.2fx** |" % (ours_epoch, their_epoch, ours_epoch / their_epoch))
    print("| images/s | %.0f | %.0f | |" % (summary["densenet"]["images_per_second"],
                                          summary["pytorch"]["images_per_second"]))

    def show(t, e):
        return "%.0f s (epoch %d)" % (t, e) if t else "not reached"
    ratio = "**%.2fx**" % summary["time_to_target_ratio"] if summary["time_to_target_ratio"] else "-"
    print("| time to %.1f%% top-1 | %s | %s | %s |" % (args.target_accuracy, show(ours_t, ours_e),
                                                     show(their_t, their_e), ratio))
    print("| best test top-1 | %.2f%% | %.2f%% | |" % (summary["densenet"]["best_top1"],
                                                    summary["pytorch"]["best_top1"]))
    print("wrote", summary_path)


if __name__ == "__main__":
    main()

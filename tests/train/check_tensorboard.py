"""Reads a `densenet train` run directory with TensorBoard's own reader and checks its events.

usage: check_tensorboard.py RUN_DIR --steps-per-epoch S --log-interval L [options]

Run by tests/train/tensorboard_cli.sh with the tools venv's python (scripts/tools_venv.sh:
pip's tensorboard). Checks that:
  - every event file is TFRecords whose CRCs TensorBoard's record reader accepts, starting with
    the file_version "brain.Event:2" event (only an interrupted file may end in a partial record);
  - EventAccumulator (TensorBoard's loader, with its purge of orphaned events) shows the epoch
    tag of every metrics.csv column that has one (COLUMN_TAGS; the EMA's with model-ema), and no
    other, once per epoch of metrics.csv, at step = epoch, equal to its value as float32;
  - the train/ tags have one point at each global step that is a multiple of L or ends an epoch
    (plus --stop-step: where a Ctrl-C stopped the run), each step once;
  - --whole-epoch: with L above the epoch's steps, train/loss and train/top1 at an epoch's last
    step equal the epoch's means;
  - --orphans: the interrupted run left events after its checkpoint (so the purge was needed);
  - --last-epoch-unsaved: metrics.csv's last epoch has its train/ points but, its checkpoint
    write having failed, no epoch/ points.
Prints one line per check; exits 1 with the first difference.
"""
import argparse
import csv
import glob
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def float32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0]


def read_records(path, allow_truncated_end):
    """Every event of one file, through TensorBoard's CRC-checking record reader."""
    reader = pywrap_tensorflow.PyRecordReader_New(path)
    events = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return events, False
        except errors.DataLossError as error:
            if allow_truncated_end and "truncated record" in str(error):
                return events, True
            fail("%s: %s" % (path, error))
        event = event_pb2.Event()
        event.ParseFromString(reader.record())
        events.append(event)


def check_files(run_dir, interrupted):
    paths = sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
    if not paths:
        fail("no events.out.tfevents.* in " + run_dir)
    files = []
    for index, path in enumerate(paths):
        may_be_cut = interrupted and index < len(paths) - 1
        events, truncated = read_records(path, may_be_cut)
        if not events or events[0].file_version != "brain.Event:2":
            fail("%s does not start with file_version brain.Event:2" % path)
        files.append(events)
        print("ok: %s: %d records, CRCs checked%s" % (os.path.basename(path), len(events),
                                                      ", a partial last record" if truncated else ""))
    return files


# metrics.csv's columns -> their epoch/ tag ("<eval>": test or validation); None: no tag. Every
# column must be here, so that a new one is checked (or says why not) rather than forgotten.
COLUMN_TAGS = {
    "epoch": None, "epoch_seconds": None, "eval_seconds": None, "elapsed_seconds": None,
    "lr": "epoch/lr", "train_loss": "epoch/train_loss", "train_top1": "epoch/train_top1",
    "eval_loss": "epoch/<eval>_loss", "eval_top1": "epoch/<eval>_top1",
    "eval_top5": "epoch/<eval>_top5", "images_per_second": "epoch/images_per_second",
    "data_wait_share": "epoch/data_wait_share",
    "comm_wait_share": "epoch/comm_wait_share",  # data-parallel runs only
    "skipped_steps": "epoch/skipped_steps", "loss_scale": "epoch/loss_scale",  # loss scaling only
    "ema_eval_loss": "epoch/ema_<eval>_loss", "ema_eval_top1": "epoch/ema_<eval>_top1",
    "ema_eval_top5": "epoch/ema_<eval>_top5",  # model-ema only
}


def epoch_tags(columns, rows, args):
    """tag -> metrics.csv column, for every column whose tag this run writes."""
    unknown = [c for c in columns if c not in COLUMN_TAGS]
    if unknown:
        fail("metrics.csv columns %s are not in COLUMN_TAGS: say which tag each has" % unknown)
    writes = {"comm_wait_share": False,  # no data-parallel runs here
              "skipped_steps": args.loss_scaling, "loss_scale": args.loss_scaling}
    ema = any(row["ema_eval_loss"] != "" for row in rows)
    tags = {}
    for column in columns:
        tag = COLUMN_TAGS[column]
        if tag is None or not writes.get(column, True) or (column.startswith("ema_") and not ema):
            continue
        tags[tag.replace("<eval>", args.eval_name)] = column
    return tags


def check_epochs(accumulator, columns, rows, args):
    # --last-epoch-unsaved: the last epoch's checkpoint failed, so it has no epoch/ points.
    saved = rows[:-1] if args.last_epoch_unsaved else rows
    epochs = [int(row["epoch"]) for row in saved]
    tags = epoch_tags(columns, rows, args)
    written = sorted(t for t in accumulator.Tags()["scalars"] if t.startswith("epoch/"))
    if written != sorted(tags):
        fail("epoch tags %s, expected those of metrics.csv's columns: %s" % (written, sorted(tags)))
    for tag, column in tags.items():
        points = accumulator.Scalars(tag)
        steps = [p.step for p in points]
        if steps != epochs:
            fail("%s at steps %s, metrics.csv has epochs %s with a checkpoint" % (tag, steps, epochs))
        for point, row in zip(points, saved):
            expected = float32(float(row[column]))
            if point.value != expected:
                fail("%s epoch %d: %r, metrics.csv %s (float32 %r)"
                     % (tag, point.step, point.value, row[column], expected))
    print("ok: %d epoch tags (%s) x epochs %s equal metrics.csv (float32)"
          % (len(tags), ", ".join(sorted(tags)), epochs))


def check_steps(accumulator, rows, args):
    last = int(rows[-1]["epoch"]) * args.steps_per_epoch
    expected = sorted({g for g in range(1, last + 1)
                       if g % args.log_interval == 0 or g % args.steps_per_epoch == 0}
                      | set(args.stop_step))
    tags = ["train/loss", "train/top1", "train/images_per_second", "train/data_wait_share",
            "train/lr"] + (["train/loss_scale"] if args.loss_scaling else [])
    for tag in tags:
        steps = [p.step for p in accumulator.Scalars(tag)]
        if steps != expected:
            fail("%s at steps %s, expected each of %s once" % (tag, steps, expected))
    # The learning rate of an epoch's last step is the epoch's (metrics.csv's lr).
    lr = {p.step: p.value for p in accumulator.Scalars("train/lr")}
    for row in rows:
        end = int(row["epoch"]) * args.steps_per_epoch
        if lr[end] != float32(float(row["lr"])):
            fail("train/lr at step %d: %r, epoch %s's lr %s" % (end, lr[end], row["epoch"], row["lr"]))
    shown = str(expected) if len(expected) <= 40 else "%d..%d (%d steps)" % (
        expected[0], expected[-1], len(expected))
    print("ok: %d train tags at steps %s, each once" % (len(tags), shown))
    if args.whole_epoch:
        for tag, column in (("train/loss", "train_loss"), ("train/top1", "train_top1")):
            at = {p.step: p.value for p in accumulator.Scalars(tag)}
            for row in rows:
                end = int(row["epoch"]) * args.steps_per_epoch
                if at[end] != float32(float(row[column])):
                    fail("%s at step %d: %r, epoch %s's %s %s"
                         % (tag, end, at[end], row["epoch"], column, row[column]))
        print("ok: train/loss and train/top1 of whole-epoch intervals equal the epoch means")


def check_orphans(files):
    """The last file's SessionLog START step, and the events earlier files hold at or after it."""
    starts = [e.step for e in files[-1] if e.HasField("session_log")
              and e.session_log.status == event_pb2.SessionLog.START]
    if len(starts) != 1:
        fail("the resumed run's file has %d SessionLog START events, expected 1" % len(starts))
    orphans = sorted({e.step for events in files[:-1] for e in events
                      if e.HasField("summary") and e.summary.value[0].tag.startswith("train/")
                      and e.step >= starts[0]})
    if not orphans:
        fail("the interrupted run left no train/ events at or after the resume step %d: "
             "nothing for the purge to do (stopped too early?)" % starts[0])
    print("ok: SessionLog START at step %d; the interrupted run had logged steps %d..%d after it"
          % (starts[0], orphans[0], orphans[-1]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--steps-per-epoch", type=int, required=True)
    parser.add_argument("--log-interval", type=int, required=True)
    parser.add_argument("--eval-name", default="test")
    parser.add_argument("--loss-scaling", action="store_true")
    parser.add_argument("--whole-epoch", action="store_true")
    parser.add_argument("--stop-step", type=int, action="append", default=[])
    parser.add_argument("--orphans", action="store_true")
    parser.add_argument("--last-epoch-unsaved", action="store_true")
    args = parser.parse_args()

    files = check_files(args.run_dir, interrupted=args.orphans)
    if args.orphans:
        check_orphans(files)
    with open(os.path.join(args.run_dir, "metrics.csv")) as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames
    # size_guidance 0: keep every point (the default samples 10,000 per tag).
    accumulator = event_accumulator.EventAccumulator(
        args.run_dir, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    check_epochs(accumulator, columns, rows, args)
    check_steps(accumulator, rows, args)


if __name__ == "__main__":
    main()

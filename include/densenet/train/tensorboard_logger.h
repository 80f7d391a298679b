#pragma once

#include "densenet/train/metrics.h"
#include "densenet/train/tensorboard.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <ostream>
#include <string>

namespace densenet::train {

struct TensorBoardLoggerOptions {
  std::string run_dir;
  std::string eval_name = "test";  // "test" or "validation": the word in the epoch tags
  int64_t log_interval = 50;       // a per-step point every log_interval global steps
  bool loss_scaling = false;       // adds train/loss_scale, epoch/loss_scale, epoch/skipped_steps
  bool data_parallel = false;      // adds epoch/comm_wait_share
};

/// One optimiser step as the trainer counts it (sums over all ranks).
struct StepScalars {
  int64_t global_step = 0;  // steps done, this one included: the x axis of the train/ tags
  double loss_sum = 0;      // the loss summed over the step's images
  int64_t correct = 0;      // top-1 hits among them
  int64_t images = 0;
  double lr = 0;                  // the learning rate of the step
  double epoch_seconds = 0;       // training wall clock of the epoch so far, this step included
  double epoch_wait_seconds = 0;  // of which spent waiting for data
  double loss_scale = std::numeric_limits<double>::quiet_NaN();  // after the step (scaling only)
};

/// The trainer's TensorBoard scalars, written by rank 0 into the run directory (see
/// TensorBoardWriter for the files):
///  - every log_interval global steps, and at each epoch's last step, at step = global step:
///    train/loss and train/top1 (means over the images of the steps since the previous point,
///    top-1 in %), train/images_per_second and train/data_wait_share (over the same steps'
///    wall clock; share in [0, 1]), train/lr (of the point's step), train/loss_scale (after it);
///  - per epoch, at step = epoch (1-based), the columns of metrics.csv: epoch/train_loss,
///    epoch/train_top1, epoch/<eval>_loss, epoch/<eval>_top1, epoch/<eval>_top5, epoch/lr,
///    epoch/images_per_second, epoch/data_wait_share, with model-ema epoch/ema_<eval>_loss,
///    epoch/ema_<eval>_top1, epoch/ema_<eval>_top5 (metrics.csv's ema_eval_*), under loss
///    scaling epoch/loss_scale and epoch/skipped_steps, in data-parallel runs
///    epoch/comm_wait_share. <eval> is options.eval_name ("test" or "validation").
/// Points every log_interval steps rather than every step: the cadence of the plain progress
/// lines, and an ImageNet run (450,000 steps) stays a few MB, while each point still averages
/// every image since the previous one, so no step goes unseen.
///
/// Events reach the disk at each epoch's end, at flush() (the trainer calls it before every
/// checkpoint, so a checkpoint write that fails on a full disk does not take the points of the
/// steps before it along) and when the logger is destroyed; in between they wait in a stdio
/// buffer. A failed write, flush or close (a full disk) does not stop training, since
/// metrics.csv holds every epoch and a full disk stops the run at its next checkpoint anyway: it
/// prints one warning line to `warnings` and writes no further events in this process.
class TensorBoardLogger {
 public:
  /// Opens a new event file in options.run_dir (or warns, see above).
  TensorBoardLogger(TensorBoardLoggerOptions options, std::ostream& warnings);
  /// Closes the event file: the events still buffered are written, or one warning says why not.
  ~TensorBoardLogger();
  TensorBoardLogger(const TensorBoardLogger&) = delete;
  TensorBoardLogger& operator=(const TensorBoardLogger&) = delete;

  /// A resumed run, at its checkpoint: `global_step` steps done, of which the current epoch's
  /// took epoch_seconds (epoch_wait_seconds waiting for data). Writes SessionLog START at
  /// global_step + 1, the first step this run logs, so TensorBoard drops the events of the
  /// interrupted run after the checkpoint.
  void resume(int64_t global_step, double epoch_seconds, double epoch_wait_seconds);

  /// After each optimiser step.
  void step(const StepScalars& step);

  /// After each epoch's record is logged and its checkpoint written (an epoch event on disk
  /// thus always has its checkpoint): the open interval's point, the epoch scalars, a flush.
  void epoch(const EpochRecord& record);

  /// Before a checkpoint, and at a stop (Ctrl-C): the open interval's point and a flush.
  void flush();

  /// False once a write failed (or the file could not be created).
  bool writing() const { return writer_ != nullptr; }

 private:
  template <typename Write>
  void guarded(Write write);
  void write_interval();
  void scalar(const std::string& tag, double value, int64_t step, double wall_time);

  TensorBoardLoggerOptions options_;
  std::ostream& warnings_;
  std::unique_ptr<TensorBoardWriter> writer_;
  // The steps since the last per-step point.
  StepScalars last_;  // the latest step (its position, lr, scale, epoch clocks)
  double last_wall_time_ = 0;
  double loss_sum_ = 0;
  int64_t correct_ = 0, images_ = 0, steps_ = 0;
  // The epoch clocks at the previous point (0 at an epoch's start).
  double base_seconds_ = 0, base_wait_seconds_ = 0;
};

}  // namespace densenet::train

#pragma once

#include "densenet/model/densenet.h"
#include "densenet/train/config.h"
#include "densenet/train/progress.h"

#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace densenet::data {
class DataLoader;
}
namespace densenet::distributed {
class GradientBuckets;
class ProcessGroup;
}  // namespace densenet::distributed

namespace densenet::train {

class LossScaler;
class Optimizer;

/// Loss and accuracy of a model over a whole evaluation set.
struct EvalResult {
  double loss = 0;     // mean cross-entropy per image (no label smoothing)
  double top1 = 0;     // % of images whose label has the highest logit
  double top5 = 0;     // % whose label is among the 5 highest (all of them when < 5 classes)
  int64_t images = 0;  // images evaluated
  double seconds = 0;  // wall-clock time
};

/// Evaluates `model` (switched to eval mode, no gradients) over every batch `loader` gives for
/// `epoch`. The caller restores train mode. With `group`, each rank's loader holds its own part
/// of the evaluation set (disjoint, no image twice) and the sums (loss, top-1 and top-5 counts,
/// images) are all-reduced: every rank returns the result over the whole set.
EvalResult evaluate(DenseNet& model, data::DataLoader& loader, const torch::Device& device,
                    int64_t epoch = 0, distributed::ProcessGroup* group = nullptr);

/// Refuses `dir` as a new run's output-dir when it holds another run (last.pth or
/// metrics.csv), unless it is the directory of `resume_path` (a checkpoint file) or
/// `config.force` is set. A missing directory, or one with only config.yaml (a run that stopped
/// before its first checkpoint), passes. Throws c10::Error naming --resume, --force and
/// --output-dir; also when `dir` exists and is not a directory.
void check_run_dir(const std::string& dir, const TrainConfig& config,
                   const std::string& resume_path);

/// The configuration stored in a training checkpoint (`--resume` target: run directory or
/// file). Throws c10::Error when the file is missing, unreadable or not a training checkpoint.
TrainConfig saved_config(const std::string& resume);

/// `densenet eval`: the weights in `weights` (.pth of any layout torchvision or this library
/// writes, .safetensors, or a training checkpoint) evaluated on the evaluation set (the test
/// split, or the validation split with valid-size). The model is `requested`'s; for a training
/// checkpoint it is the checkpoint's configuration with the keys in `given` taken from
/// `requested`. Prints a summary line to `out`. Throws c10::ValueError when `given` holds an
/// architecture key (arch, growth-rate, ...) that differs from a training checkpoint's own;
/// c10::Error when the weights do not fit the model (listing the keys), or the data cannot be
/// read.
EvalResult evaluate_weights(const TrainConfig& requested, const std::vector<std::string>& given,
                            const std::string& weights, std::ostream& out);

/// One batch's forward and backward in `splits` pieces (num-batch-splits): each piece's summed
/// cross-entropy is divided by the whole batch's size, so the accumulated gradients are those of
/// the whole batch's mean loss, up to batch-norm statistics, which each piece computes over its
/// own images. (The original project divides by the piece's size: a gradient `splits` times too
/// large.) images (N, C, H, W), labels (N) int64 on the model's device.
struct BatchResult {
  double loss_sum = 0;  // summed cross-entropy (with label smoothing) over the batch
  int64_t correct = 0;  // top-1 correct
  bool finite = true;   // false: a piece's loss was NaN or infinite (its backward was skipped)
};
/// With `buckets` (data-parallel), the last piece's backward all-reduces the gradients (the
/// caller then calls buckets->finish()), and a non-finite loss does not skip backward: the other
/// ranks are waiting for this rank's buckets. The caller stops on `finite` being false anywhere.
/// With `autocast` (amp), each piece's forward and loss run under AutocastGuard in that dtype,
/// and backward outside it; with `scaler`, each piece's loss is multiplied by the loss scale
/// before backward, so the gradients are scaled (the caller unscales them: LossScaler).
BatchResult accumulate_gradients(DenseNet& model, const torch::Tensor& images,
                                 const torch::Tensor& labels, int64_t splits,
                                 double label_smoothing,
                                 distributed::GradientBuckets* buckets = nullptr,
                                 std::optional<c10::ScalarType> autocast = std::nullopt,
                                 const LossScaler* scaler = nullptr);

/// The optimiser step after accumulate_gradients, as torch.cuda.amp.GradScaler's recipe takes
/// it: with `scaler`, the gradients are unscaled first, and when any is inf or NaN the step is
/// skipped (parameters and optimiser state untouched) and the scale backs off; otherwise the
/// gradient norm is clipped to `clip` (0: not clipped), the optimiser steps, and the scale
/// counts a clean step (LossScaler::update). Returns whether the step was taken.
bool step_optimizer(Optimizer& optimizer, double clip, LossScaler* scaler = nullptr);

/// How a run ended.
struct RunSummary {
  std::string run_dir;
  int64_t epochs_completed = 0;
  int64_t global_step = 0;
  double best_top1 = 0;  // % (evaluation top-1), NaN when never evaluated
  int64_t best_epoch = 0;
  double last_top1 = 0;
  bool interrupted = false;  // stopped by request_stop() (Ctrl-C, SIGTERM)
  double seconds = 0;
};

/// Asks a running Trainer to write a checkpoint at the next step boundary and return; safe to
/// call from a signal handler (it only sets an atomic flag).
void request_stop();
/// Clears a previous request (tests run several trainers in one process).
void clear_stop_request();

/// One training run, from a validated configuration: data, model, optimiser, schedule, the run
/// directory and its checkpoints. The loop reads top to bottom:
///   data -> forward -> loss -> backward (per batch split) -> clip -> step -> schedule -> log,
/// then, per epoch, evaluate -> metrics -> curve -> checkpoint. With amp, forward and loss run
/// under autocast; with a loss scaler, the gradients are unscaled before clip, and a step whose
/// gradients hold an inf or NaN is skipped (counted in metrics.csv's skipped_steps).
/// Evaluation runs in float32. With pretrained, the model starts from that file's weights
/// (load_pretrained); with model-ema, a ModelEma is updated after every step and evaluated each
/// epoch beside the model (best_ema.pth).
/// A NaN or infinite loss throws c10::Error naming the epoch and step before the weights are
/// updated, and nothing is saved, so the last checkpoint stays the last good one.
class Trainer {
 public:
  /// `out` receives the start-up summary, progress and per-epoch lines; `terminal` selects the
  /// live progress bar (else plain lines every log-interval steps). Throws c10::Error for a
  /// configuration that cannot run (missing data, bad resume, occupied output directory, ...).
  ///
  /// With `group` (WORLD_SIZE > 1), the run is data-parallel: batch-size is the global batch,
  /// each rank trains on its 1/world-size part of it, gradients are averaged in buckets during
  /// backward, and only rank 0 prints and writes the run directory. Throws c10::Error for a
  /// batch-size not divisible by the world size.
  explicit Trainer(TrainConfig config, std::ostream& out = std::cout,
                   bool terminal = is_terminal(stdout),
                   std::shared_ptr<distributed::ProcessGroup> group = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Trains to `epochs` (or evaluates once with test-only) and returns how it ended.
  /// `after_step`, when given, is called with the global step count after every optimiser step
  /// (tests use it to interrupt a run at an exact step through request_stop()).
  RunSummary run(const std::function<void(int64_t)>& after_step = nullptr);

  const TrainConfig& config() const;
  const std::string& run_dir() const;
  DenseNet& model();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace densenet::train

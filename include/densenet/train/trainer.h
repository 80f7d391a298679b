#pragma once

#include "densenet/model/densenet.h"
#include "densenet/train/config.h"
#include "densenet/train/evaluate.h"
#include "densenet/train/plan.h"
#include "densenet/train/progress.h"
#include "densenet/train/train_step.h"

#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

namespace densenet::distributed {
class ProcessGroup;
}

namespace densenet::train {

namespace detail {
struct TrainingRun;
}

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

/// One training run, from a checked plan (plan_training): data, model, optimiser, schedule, the
/// run directory and its checkpoints. The loop (src/train/trainer.cpp) reads top to bottom:
///   per epoch: train_one_epoch -> evaluate -> record -> checkpoint;
///   per step:  data -> forward -> loss -> backward (per batch split) -> (all-reduce) -> clip ->
///              step -> schedule -> log.
/// With amp, forward and loss run under autocast; with a loss scaler, the gradients are
/// unscaled before clip, and a step whose gradients hold an inf or NaN is skipped (counted in
/// metrics.csv's skipped_steps). Evaluation runs in float32. With pretrained, the model starts
/// from that file's weights (load_pretrained); with model-ema, a ModelEma is updated after every
/// step and evaluated each epoch beside the model (best_ema.pth).
/// A NaN or infinite training loss throws c10::Error naming the epoch and step before the
/// weights are updated; so do weights that overflowed, and a non-finite evaluation loss, before
/// the epoch is logged. Nothing is saved then: the last checkpoint stays the last good one.
class Trainer {
 public:
  /// `out` receives the start-up summary, progress and per-epoch lines; `terminal` selects the
  /// live progress bar (else plain lines every log-interval steps). Throws c10::Error for a run
  /// that cannot start (missing data, a resumed checkpoint that does not fit, no memory).
  ///
  /// With `group` (WORLD_SIZE > 1), the run is data-parallel: batch-size is the global batch,
  /// each rank trains on its 1/world-size part of it, gradients are averaged in buckets during
  /// backward, and only rank 0 prints and writes the run directory.
  Trainer(TrainPlan plan, std::ostream& out = std::cout, bool terminal = is_terminal(stdout),
          std::shared_ptr<distributed::ProcessGroup> group = nullptr);
  /// The same from a whole configuration (plan_training with every key counted as given);
  /// throws c10::ValueError where plan_training does.
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
  std::unique_ptr<detail::TrainingRun> run_;
};

}  // namespace densenet::train

#pragma once

// Everything a training run holds, shared by the trainer (trainer.cpp) and what it prints
// (run_report.cpp). Members are listed in the order the Trainer builds them.
#include "densenet/distributed/gradient_buckets.h"
#include "densenet/distributed/process_group.h"
#include "densenet/train/checkpointer.h"
#include "densenet/train/metrics.h"
#include "densenet/train/model_ema.h"
#include "densenet/train/plan.h"
#include "densenet/train/tensorboard_logger.h"
#include "densenet/train/training_state.h"

#include "train/run_setup.h"

#include <chrono>
#include <memory>
#include <ostream>

namespace densenet::train::detail {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct TrainingRun {
  TrainPlan plan;
  const TrainConfig& config() const { return plan.config; }

  // Output: rank 0 alone prints and owns the run directory.
  std::ostream* out = nullptr;
  std::ostream no_output{nullptr};  // where the other ranks' lines go
  bool terminal = false;            // a live progress bar rather than plain lines

  // Data parallelism: the process group (null for one process) and the gradient buckets.
  std::shared_ptr<distributed::ProcessGroup> group;
  std::unique_ptr<distributed::GradientBuckets> buckets;
  int64_t rank = 0, world_size = 1, local_world_size = 1;
  bool stop_agreed = false;     // every rank saw a stop request at the last step's all-reduce
  int64_t replica_checks = 0;   // checkpoints at which the replicas were compared (all equal)
  int64_t replica_tensors = 0;  // tensors compared at each
  bool writes() const { return rank == 0; }

  torch::Device device{torch::kCPU};
  int threads = 1;
  RunData data;
  std::unique_ptr<data::DataLoader> train_loader, eval_loader;
  ModelSetup model;
  std::unique_ptr<ModelEma> ema;  // model-ema: the averaged weights (null without)
  Optimization optimization;

  // The run directory's records: written by rank 0 unless the run only evaluates or has no
  // epoch left to train.
  bool writes_run_dir = false;
  std::unique_ptr<Checkpointer> checkpointer;
  std::unique_ptr<MetricLogger> metrics;
  std::unique_ptr<TensorBoardLogger> tensorboard;  // rank 0, with the key tensorboard

  // Where the run is and what it has done; its model, optimizer and rng are filled in when a
  // checkpoint is written (capture in trainer.cpp).
  TrainingState state;
  double elapsed_before = 0;  // seconds trained before this process (resumed runs)
  Clock::time_point process_start = Clock::now();
  double elapsed() const { return elapsed_before + seconds_since(process_start); }
  /// Where the run is: output-dir, or, for a resumed run that wrote nothing (no epoch left to
  /// train, or test-only), the directory of the checkpoint it resumed.
  std::string run_dir() const;
};

/// The start-up summary: run directory, data, model, memory, training, amp and data-parallel
/// lines (run_report.cpp).
void print_startup(TrainingRun& run);
/// The line of an epoch that ended, and under data parallelism its communication wait.
void print_epoch(TrainingRun& run, const EpochRecord& record);
/// How to continue a run stopped at a step boundary.
void print_stopped(TrainingRun& run);
/// Why a resumed run that has trained all its epochs does nothing.
void print_nothing_to_do(TrainingRun& run);
/// The closing lines of a run that trained all its epochs.
void print_done(TrainingRun& run);

}  // namespace densenet::train::detail

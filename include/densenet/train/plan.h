#pragma once

#include "densenet/train/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train {

/// What `densenet train` was asked to do, before it is checked.
struct TrainRequest {
  TrainConfig config;  // the YAML file's keys with the flags over them
  /// The keys given explicitly (flags and file), which a resumed run may take over its own.
  /// nullopt: every key of `config` counts as given (a library caller's whole configuration).
  std::optional<std::vector<std::string>> given;
  int64_t world_size = 1;  // ranks of a data-parallel run (WORLD_SIZE, --nproc-per-node x nnodes)
  /// Ranks of a data-parallel run, even a single one (torchrun's, the launcher's: a process group
  /// is made); world_size > 1 implies it.
  bool data_parallel = false;
};

/// A checked run: what plan_training returns and the Trainer is built from.
struct TrainPlan {
  /// The effective configuration: for a resumed run the checkpoint's own, with the keys that
  /// may change taken from the request; output-dir set (a resumed run continues where its
  /// checkpoint is now, unless another output-dir is given).
  TrainConfig config;
  std::string resume_path;  // the checkpoint file being continued; "" for a new run
  int64_t world_size = 1;
  std::string backend;  // the collectives' backend of a data-parallel run (gloo, nccl); "" for none
};

/// The one validation step of a training run. It checks every key (validate), merges a resumed
/// run's saved configuration (resume_config: only keys that change where and how fast the run
/// computes may differ, compared as built), places the run directory and refuses one that holds
/// another run (check_run_dir), and checks what depends on the world size (batch-size divisible
/// by it, num-batch-splits within each rank's share) and the backend. Nothing is read but the
/// resumed checkpoint and nothing is written. Throws c10::ValueError naming the key for every
/// mistake in the request (the CLI exits with status 2); c10::Error when the resumed checkpoint
/// exists but cannot be read (status 1).
TrainPlan plan_training(const TrainRequest& request);

/// Refuses `dir` as a new run's output-dir when it holds another run (a checkpoint, last.pth),
/// unless it is the directory of `resume_path` (a checkpoint file) or `config.force` is set. A
/// missing directory, or one a failed run left without a checkpoint, passes. Throws
/// c10::ValueError naming --resume, --force and --output-dir; also when `dir` exists and is not
/// a directory.
void check_run_dir(const std::string& dir, const TrainConfig& config,
                   const std::string& resume_path);

/// The configuration stored in a training checkpoint (`--resume` target: run directory or
/// file). Throws c10::ValueError when there is no such file, c10::Error when it is unreadable or
/// not a training checkpoint.
TrainConfig saved_config(const std::string& resume);

}  // namespace densenet::train

#pragma once

#include "densenet/io/pth_value.h"
#include "densenet/io/state_dict.h"
#include "densenet/train/metrics.h"

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train {

/// The sums of the epoch in progress. They are kept in a checkpoint so that an epoch resumed in
/// the middle reports the same means as one that ran through.
struct EpochSums {
  double loss_sum = 0;        // summed training loss (with label smoothing) of the images so far
  int64_t correct = 0;        // of them top-1 correct
  int64_t images = 0;         // images trained on (all ranks)
  double seconds = 0;         // training wall clock of the epoch so far
  double wait_seconds = 0;    // of which waiting for data
  double comm_seconds = 0;    // of which waiting for collectives (data-parallel; rank 0's clock)
  int64_t skipped_steps = 0;  // optimiser steps the loss scaler skipped (inf/NaN gradients)
};

/// What a training checkpoint holds: everything a run needs to continue exactly, and what
/// describes it. to_checkpoint and from_checkpoint below are the only code that knows the
/// checkpoint's keys (as timm's CheckpointSaver owns its own); docs/CHECKPOINTS.md lists them.
struct TrainingState {
  // The model and its optimisation.
  StateDict model;                     // "model": torchvision's names, loads strictly there
  pth::Value optimizer;                // "optimizer": torch.optim's state_dict layout
  std::optional<pth::Value> scaler;    // "scaler": torch GradScaler's state_dict (loss scaling)
  std::optional<StateDict> model_ema;  // "state_dict_ema" (timm's key): the EMA (model-ema)
  // Where the run is.
  int64_t epoch = 0;        // epochs completed
  int64_t next_batch = 0;   // the next batch of the epoch in progress (0: at an epoch's end)
  int64_t global_step = 0;  // optimiser steps taken (also "schedule"'s step)
  EpochSums partial;        // "partial_epoch"
  torch::Tensor rng;        // "rng"/"torch_cpu": the CPU generator's state (dropout)
  int64_t world_size = 1;   // ranks that wrote it: a mid-epoch position is exact only on as many
  // Its record.
  double best_top1 = -1;  // best evaluation top-1 so far, in %; -1 before the first evaluation
  int64_t best_epoch = 0;
  double best_ema_top1 = -1;  // the EMA's, likewise (model-ema; best_ema.pth)
  int64_t best_ema_epoch = 0;
  double elapsed_seconds = 0;        // wall clock trained, over every process that continued it
  std::vector<EpochRecord> history;  // one record per completed epoch (metrics.csv's rows)
  // What it is.
  std::string config_yaml;           // "config": the effective configuration (config.yaml)
  std::string arch;                  // the preset name
  std::string lr_type;               // "schedule"'s lr_type
  std::vector<std::string> classes;  // class names, index = label (classes.txt)
  int64_t num_parameters = 0;
};

/// The checkpoint Value torch.save would write for `state` (a dict; torch.load(weights_only=
/// True) reads it, torchvision's DenseNet loads its "model" strictly).
pth::Value to_checkpoint(const TrainingState& state);

/// The state in a checkpoint that to_checkpoint wrote, this version or an earlier one (keys
/// added later read as their defaults: scaler and EMA none, comm_seconds 0, skipped_steps 0,
/// world_size 1). Throws c10::Error naming `source` and the first key that is missing: "'FILE' is
/// not a densenet training checkpoint: no 'config'".
TrainingState from_checkpoint(const pth::Value& root, const std::string& source);

}  // namespace densenet::train

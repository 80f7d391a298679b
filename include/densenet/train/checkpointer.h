#pragma once

#include "densenet/train/training_state.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train {

/// The checkpoint files of a run directory, as timm's CheckpointSaver keeps them:
///   last.pth              every save (epoch ends and interruptions), written atomically;
///   best.pth              the checkpoint of the best evaluation top-1 so far;
///   best_ema.pth          with model-ema, the EMA's weights at its best evaluation top-1
///                         (ema_weights_checkpoint: weights and description, no optimiser);
///   checkpoint-<E>.pth    every `save_interval` epochs (E = epochs completed, 3+ digits),
///                         the newest `keep_checkpoints` kept.
/// Every file is written whole to a temporary and renamed (write_file_atomically), so a crash
/// or a full disk leaves the previous version intact.
class Checkpointer {
 public:
  Checkpointer(std::string run_dir, int64_t save_interval, int64_t keep_checkpoints);

  /// Serialises `state` once (to_checkpoint, in torch.save's zip format) and writes last.pth. With
  /// `completed_epoch`, it is an epoch's end: also best.pth when `is_best`, and the numbered
  /// copy when the epoch is a multiple of save_interval, best_ema.pth when `is_best_ema`, then the
  /// oldest numbered copies beyond keep_checkpoints are removed. Returns the paths written. Throws
  /// c10::Error naming the file when a write fails (the file's previous version is then untouched).
  std::vector<std::string> save(const TrainingState& state,
                                std::optional<int64_t> completed_epoch = std::nullopt,
                                bool is_best = false, bool is_best_ema = false);

  std::string last_path() const;
  std::string best_path() const;
  std::string best_ema_path() const;
  std::string numbered_path(int64_t epoch) const;

  /// The numbered checkpoints in the directory, oldest first.
  std::vector<std::string> numbered_checkpoints() const;

  /// `--resume` target: a checkpoint file as is, or a run directory's last.pth. Throws
  /// c10::ValueError (a c10::Error: the argument names no checkpoint) naming the path when
  /// neither exists.
  static std::string resolve(const std::string& directory_or_file);

 private:
  std::string run_dir_;
  int64_t save_interval_;
  int64_t keep_checkpoints_;
};

}  // namespace densenet::train

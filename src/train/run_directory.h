#pragma once

// The run directory: where it is, whether it may be used, and the files that record the run
// (config.yaml, classes.txt; the checkpoints and metrics have their own classes).
#include "densenet/train/config.h"

#include <string>
#include <vector>

namespace densenet::train::detail {

/// runs/<dataset>-<arch>-<date>-<time>, in local time.
std::string default_run_dir(const TrainConfig& config);

/// Whether `dir` is the directory of the checkpoint `resume_path` (the run continues there).
bool is_resumed_run(const std::string& dir, const std::string& resume_path);

/// The run directory of a plan (plan_training checked that it may be used: check_run_dir): the
/// previous run's outputs removed where --force replaces it (its checkpoints, metrics, curves
/// and event files, nothing else), then the directory made. Throws c10::Error when a file
/// cannot be removed or the directory cannot be made.
void prepare_run_dir(const std::string& dir, const std::string& resume_path);

/// A run continued in another directory brings its best.pth (and best_ema.pth) along: the best
/// epoch so far may be behind, and they are written only when an epoch beats it.
void carry_best_checkpoint(const std::string& dir, const std::string& resume_path);

/// config.yaml (the effective configuration, without `force` or `resume`: `--config
/// run/config.yaml` starts a new run from this one's settings and must not overwrite or
/// continue it unless asked again) and classes.txt (one class name per line, index = label:
/// what predict --labels reads). Both written atomically.
void write_run_record(const std::string& dir, const TrainConfig& config,
                      const std::vector<std::string>& classes);

}  // namespace densenet::train::detail

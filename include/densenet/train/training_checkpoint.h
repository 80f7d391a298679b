#pragma once

#include "densenet/io/pth_value.h"
#include "densenet/io/state_dict.h"
#include "densenet/train/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train {

/// What a checkpoint of `densenet train` (last.pth, best.pth, checkpoint-NNN.pth) says about its
/// model, for the commands that take one as weights: eval and predict.
struct TrainingCheckpoint {
  /// Its "config" (the run's TrainConfig), with `stem` set from the weights' first convolution
  /// when the config left it to the input size: another input size keeps the weights' stem.
  TrainConfig config;
  /// Its "classes": the class names in label order (empty when it has none).
  std::vector<std::string> classes;
  /// Its "model", with torchvision's keys.
  StateDict weights;
};

/// `root` (a checkpoint as read) as a training checkpoint: a dict holding a "config" string and a
/// "model"; nullopt for anything else (plain weights). Throws c10::Error naming `source` when the
/// config does not parse or the model is not a dict of tensors.
std::optional<TrainingCheckpoint> read_training_checkpoint(const pth::Value& root,
                                                           const std::string& source);

/// Refuses, as c10::ValueError, each architecture key in `given` (config_key(k).model: arch,
/// num-init-features, growth-rate, block-config, bn-size, compression, stem; input-size and
/// drop-rate may differ) whose value in `requested` builds another model than `saved` (compared
/// as built: `--bn-size 4` for a preset with 4 passes):
///   'run/last.pth' is a training checkpoint of densenet-bc-40 (growth-rate 4), not growth-rate
///   8: its architecture comes from it; drop --growth-rate
void check_checkpoint_architecture(const TrainConfig& saved, const TrainConfig& requested,
                                   const std::vector<std::string>& given,
                                   const std::string& source);

/// The image side (pixels) a run trained at: `input-size`, or when 0 the dataset's (28 for
/// MNIST and Fashion-MNIST, 32 for CIFAR and synthetic data, 224 for image folders).
int64_t trained_input_size(const TrainConfig& config);

}  // namespace densenet::train

#pragma once

#include "densenet/model/options.h"

#include <optional>
#include <string>
#include <vector>

namespace densenet {

/// A named configuration from the papers or torchvision.
struct Preset {
  std::string name;
  std::string description;
  DenseNetOptions options;
};

/// Every preset, in the order `densenet info --list` shows them.
const std::vector<Preset>& presets();

/// Options of the preset called `name` (e.g. "densenet121", "densenet-bc-100"); throws
/// c10::Error listing the known names otherwise.
DenseNetOptions preset_options(const std::string& name);

/// The original project's per-field overrides of a preset; an unset field keeps the preset's.
struct ModelOverrides {
  std::optional<int64_t> growth_rate, num_init_features, bn_size;
  std::optional<std::vector<int64_t>> block_config;
  std::optional<double> compression, drop_rate;
  std::optional<int64_t> num_classes, in_channels, input_size;
  std::optional<Stem> stem;
};

/// `preset` with `overrides` applied, validated. The DenseNet paper gives DenseNet-BC a stem of
/// 2k channels, so a new growth rate moves a bottleneck preset's stem to 2k unless
/// num_init_features is given too. Throws c10::Error for an invalid result.
DenseNetOptions apply_overrides(DenseNetOptions preset, const ModelOverrides& overrides);

}  // namespace densenet

#pragma once

#include "densenet/model/options.h"

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

}  // namespace densenet

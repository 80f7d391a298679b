#pragma once

#include "densenet/model/presets.h"

#include <optional>
#include <string>
#include <vector>

namespace densenet {

/// One architecture override: a field of ModelOverrides as the command line and the training
/// config spell it. override_fields() is the one list that `--growth-rate` and its siblings
/// (info, bench, gradcheck, predict, convert: cli/model_arguments.cpp) and the training config's
/// architecture keys (densenet/train/config.h) take their names, help and value checks from.
struct OverrideField {
  std::string name;        // "growth-rate": the flag --growth-rate, the config key growth-rate
  std::string original;    // the original project's spelling ("growth_rate"), or ""
  std::string value_name;  // "K", for --help
  std::string help;        // one line
  /// Why `text` is not a value of this field ("must be in (0, 1], got 0"), or "" when it is.
  std::string (*check)(const std::string& text);
  /// Sets the field from `text` (which `check` accepted).
  void (*set)(ModelOverrides& overrides, const std::string& text);
};

/// growth-rate, block-config, num-init-features, bn-size, compression, drop-rate, num-classes,
/// in-channels, input-size, stem: in the order `--help` lists them.
const std::vector<OverrideField>& override_fields();

/// The field called `name`; nullptr for none.
const OverrideField* find_override_field(const std::string& name);

}  // namespace densenet

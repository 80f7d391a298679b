#pragma once

#include "densenet/train/config.h"

#include <CLI/CLI.hpp>

#include <map>
#include <string>

namespace densenet::cli {

/// The command-line option of a config key (`densenet train` takes every key, `densenet eval`
/// those it uses), made from the key table: --KEY and the original project's
/// --KEY_WITH_UNDERSCORES, the type's value name, the help with the allowed values and the default,
/// a later flag winning. A bool key is a flag that also takes a value, as the config file writes
/// it:
/// `--sync-bn`, `--sync-bn false` and `--sync-bn=false`. The text given lands in `values[name]`.
CLI::Option* add_config_option(CLI::App& command, const train::ConfigKey& key,
                               std::map<std::string, std::string>& values,
                               const std::string& group);

}  // namespace densenet::cli

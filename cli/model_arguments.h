#pragma once

#include "arguments.h"

#include "densenet/model/options.h"

#include <torch/types.h>

#include <vector>

namespace densenet::cli {

/// --arch and the per-field overrides, with the original project's flag names. With
/// `memory_help`, --memory takes a comma-separated list of modes described by it (bench,
/// gradcheck); otherwise it names one mode.
std::vector<OptionSpec> model_option_specs(const std::string& memory_list_help = "");

/// "naive,efficient" -> the modes; throws c10::Error naming a bad one.
std::vector<MemoryMode> parse_memory_modes(const std::string& text);

/// The preset named by --arch (default densenet-40, the original's default network), with
/// every given override applied. Validates the result. `--memory` names one mode unless
/// `read_memory` is false (bench takes a list there).
DenseNetOptions model_options_from(const Arguments& args, bool read_memory = true);

/// --device: cpu (default) or cuda, checked against what this LibTorch build can reach.
torch::Device device_from(const Arguments& args);

}  // namespace densenet::cli

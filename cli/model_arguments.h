#pragma once

#include "arguments.h"

#include "densenet/options.h"

#include <vector>

namespace densenet::cli {

/// --arch and the per-field overrides, with the original project's flag names.
std::vector<OptionSpec> model_option_specs();

/// The preset named by --arch (default densenet-40, the original's default network), with
/// every given override applied. Validates the result.
DenseNetOptions model_options_from(const Arguments& args);

}  // namespace densenet::cli

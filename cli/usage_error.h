#pragma once

#include <stdexcept>

namespace densenet::cli {

/// A command-line mistake (a missing option, options that contradict each other, a value out
/// of range). main() prints it as one line "densenet NAME: error: ..." with a hint to use
/// --help, and exits with status 2, as for CLI11's own parse errors.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace densenet::cli

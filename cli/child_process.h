#pragma once

#include <string>
#include <vector>

namespace densenet::cli {

/// Runs this program again (/proc/self/exe) with `args` (without argv[0]) and returns what it
/// wrote to stdout; its stderr passes through. Throws std::runtime_error when it cannot be
/// started or does not exit with status 0. For measurements that need a fresh process.
std::string run_this_program(const std::vector<std::string>& args);

}  // namespace densenet::cli

#pragma once

#include <string>
#include <vector>

namespace densenet::cli {

/// Each command takes its arguments (after the command name) and returns the exit code.
int info_command(const std::vector<std::string>& args);
int bench_command(const std::vector<std::string>& args);
int gradcheck_command(const std::vector<std::string>& args);
int convert_command(const std::vector<std::string>& args);
int inspect_command(const std::vector<std::string>& args);
int predict_command(const std::vector<std::string>& args);

}  // namespace densenet::cli

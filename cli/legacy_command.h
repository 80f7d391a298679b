#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace densenet::cli {

// Temporary, while the commands move to CLI11 one by one: a subcommand that hands all of its
// arguments to a command written for the old hand-written parser (cli/arguments.h).
using LegacyCommand = int (*)(const std::vector<std::string>& args);
void add_legacy_command(CLI::App& app, const std::string& name, const std::string& description,
                        LegacyCommand run);

int info_command(const std::vector<std::string>& args);
int bench_command(const std::vector<std::string>& args);
int gradcheck_command(const std::vector<std::string>& args);
int convert_command(const std::vector<std::string>& args);
int inspect_command(const std::vector<std::string>& args);
int predict_command(const std::vector<std::string>& args);

}  // namespace densenet::cli

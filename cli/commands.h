#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace densenet::cli {

/// Each adds subcommand NAME to `app` with its options and a callback that runs it. User
/// mistakes throw UsageError (cli/usage_error.h) or a CLI::Error; main maps every user mistake
/// to exit code 2 and one line "densenet NAME: error: ..." (plus a hint), other errors to 1.
void add_info_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_gradcheck_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_data_command(CLI::App& app);

/// Thrown by a command's callback to end the program with `code` (non-zero) after the command
/// has printed its own report, e.g. gradcheck's FAIL or predict's unreadable image.
struct CommandExit {
  int code;
};

/// Adds subcommand `name` whose callback calls `run` and exits with what it returns (0 =
/// success). Options the command does not know are reported with the closest known spelling
/// ("did you mean --growth-rate?"). Use it from every add_X_command:
///   auto args = std::make_shared<MyArgs>();
///   CLI::App* command = add_command(app, "x", "does x", [args] { return run_x(*args); });
///   command->add_option("--size", args->size, "...");
CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& description,
                      std::function<int()> run);

/// `text` broken into lines of at most `width` columns at spaces, for help footers (CLI11 prints
/// footers as given).
std::string wrapped(const std::string& text, size_t width = 88);

}  // namespace densenet::cli

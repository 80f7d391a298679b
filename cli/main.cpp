#include "commands.h"
#include "usage_error.h"

#include <c10/util/Exception.h>
#include <torch/version.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <new>
#include <string>

namespace {

using densenet::cli::UsageError;

// The subcommand called `name`, or nullptr.
const CLI::App* find_command(const CLI::App& app, const std::string& name) {
  for (const CLI::App* command : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (command->check_name(name)) return command;
  }
  return nullptr;
}

// `densenet help CMD` prints what `densenet CMD --help` prints.
void add_help_command(CLI::App& app) {
  auto topic = std::make_shared<std::string>();
  CLI::App* help = app.add_subcommand("help", "show a command's help: densenet help COMMAND");
  help->add_option("command", *topic, "the command to describe");
  help->callback([&app, topic] {
    // The formatter directly: App::help() would describe the `help` command itself.
    if (topic->empty()) {
      std::cout << app.get_formatter()->make_help(&app, "densenet", CLI::AppFormatMode::Normal);
      return;
    }
    const CLI::App* command = find_command(app, *topic);
    if (command == nullptr) throw UsageError("unknown command '" + *topic + "'");
    std::cout << command->help("densenet");  // "Usage: densenet CMD", as CMD --help says
  });
}

// The subcommand named on the command line, or "" (for error messages).
std::string command_name(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (find_command(app, argv[i]) != nullptr) return argv[i];
  }
  return "";
}

int report(const std::string& command, const std::string& message, int code) {
  const std::string prefix = command.empty() ? "densenet" : "densenet " + command;
  // One line: the pointer to --help goes on the error's own line, for logs and grep.
  std::fprintf(stderr, "%s: error: %s%s\n", prefix.c_str(), message.c_str(),
               code == 2 ? (" (see '" + prefix + " --help')").c_str() : "");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Memory-efficient DenseNet / DenseNet-BC on LibTorch.", "densenet");
  app.set_version_flag("--version", std::string("densenet " DENSENET_VERSION
                                                " (built with LibTorch " TORCH_VERSION ")"));
  app.require_subcommand(1);
  // One line per command, in the order `densenet --help` lists them.
  densenet::cli::add_train_command(app);
  densenet::cli::add_eval_command(app);
  densenet::cli::add_info_command(app);
  densenet::cli::add_predict_command(app);
  densenet::cli::add_convert_command(app);
  densenet::cli::add_inspect_command(app);
  densenet::cli::add_bench_command(app);
  densenet::cli::add_gradcheck_command(app);
  densenet::cli::add_data_command(app);
  add_help_command(app);
  // After the commands: a subcommand copies its parent's footer when it is added.
  app.footer(
      "Run 'densenet COMMAND --help' for a command's options.\n"
      "Exit status: 0 success, 1 failure while running, 2 command-line mistake.");

  if (argc < 2) {
    std::cerr << app.help();
    return 2;
  }
  const std::string name = command_name(app, argc, argv);
  if (name.empty() && argv[1][0] != '-') {
    return report("", "unknown command '" + std::string(argv[1]) + "'", 2);
  }
  try {
    app.parse(argc, argv);
    return 0;
  } catch (const densenet::cli::CommandExit& exit) {
    return exit.code;
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report(name, e.what(), 2);
  } catch (const UsageError& e) {
    return report(name, e.what(), 2);
  } catch (const c10::ValueError& e) {
    // The library's word for a mistake in what was asked (a config key, an option that
    // contradicts a checkpoint): a usage error, here and nowhere else.
    return report(name, e.what_without_backtrace(), 2);
  } catch (const c10::Error& e) {
    // what_without_backtrace: one clear line, not a C++ stack.
    return report(name, e.what_without_backtrace(), 1);
  } catch (const std::bad_alloc&) {
    return report(name, "out of memory", 1);
  } catch (const std::exception& e) {
    return report(name, e.what(), 1);
  }
}

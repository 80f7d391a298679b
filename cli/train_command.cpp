// `densenet train`: every configuration key as a flag, over an optional YAML file.
#include "commands.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/data/image.h"
#include "densenet/train/config.h"
#include "densenet/train/trainer.h"
#include "densenet/util/heap.h"

#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace densenet::cli {
namespace {

struct TrainArguments {
  ModelArguments refused;  // --depth, --efficient, --small-inputs
  std::string config_file;
  std::map<std::string, std::string> values;  // key -> text, for the flags given
};

// The first Ctrl-C (or SIGTERM) asks for a checkpoint at the next step boundary; a second one
// ends the process at once (the last checkpoint on disk stays loadable: writes are atomic).
volatile std::sig_atomic_t stop_signal = 0;  // the first signal received, for the exit status

extern "C" void on_stop_signal(int signal) {
  static volatile std::sig_atomic_t received = 0;
  if (stop_signal == 0) stop_signal = signal;
  if (received++ > 0) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  train::request_stop();
}

// Options for every config key; `help_keys` false leaves them out of the help screen (eval).
void add_key_options(CLI::App& command, TrainArguments& args, bool train_only_keys = true) {
  const train::TrainConfig defaults;
  for (const train::ConfigKey& key : train::config_keys()) {
    const std::string shown = train::config_value(defaults, key.name);
    const std::string help =
        key.help +
        (shown == "null" || shown == "\"\"" || shown == "~" ? "" : " [default: " + shown + "]");
    std::string names = "--" + key.name;
    std::string underscored = key.name;
    for (char& c : underscored) c = c == '-' ? '_' : c;
    if (underscored != key.name) names += ",--" + underscored;  // the original's spelling
    std::string& value = args.values[key.name];
    CLI::Option* option = key.type == "bool" ? command.add_flag(names + "{true}", value, help)
                                             : command.add_option(names, value, help);
    if (key.type != "bool") {
      option->type_name(key.type == "int list" || key.type == "real list" ? "LIST"
                        : key.type == "int"                               ? "INT"
                        : key.type == "real"                              ? "X"
                        : key.type == "size"                              ? "SIZE"
                                                                          : "TEXT");
    }
    // A later flag wins, as a flag wins over the config file.
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    option->group(key.model ? "Model" : train_only_keys ? "Training" : "Options");
  }
}

int run_train(const TrainArguments& args, const CLI::App& command) {
  refuse_original_spellings(args.refused);
  train::TrainConfig requested;
  std::vector<std::string> given;
  // A bad key or value in a flag or the config file is a command-line mistake (exit 2).
  try {
    if (!args.config_file.empty()) given = train::load_config_file(requested, args.config_file);
    for (const train::ConfigKey& key : train::config_keys()) {
      if (command.get_option("--" + key.name)->count() == 0) continue;
      train::set_config_value(requested, key.name, args.values.at(key.name));
      given.push_back(key.name);
    }
    train::validate(requested);
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  train::TrainConfig config = requested;
  if (!requested.resume.empty()) {
    // Continue under the run's own configuration; what was given may only change where and how
    // fast it runs.
    config = train::resume_config(train::saved_config(requested.resume), requested, given);
  }
  keep_freed_memory();
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  train::Trainer trainer(config);
  const train::RunSummary summary = trainer.run();
  // As a shell reports a process ended by the signal: 128 + its number (130 SIGINT, 143 SIGTERM).
  return summary.interrupted ? 128 + (stop_signal != 0 ? stop_signal : SIGINT) : 0;
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArguments>();
  auto self = std::make_shared<CLI::App*>(nullptr);  // the callback needs its own options
  CLI::App* command =
      add_command(app, "train", "train a DenseNet (default: DenseNet-BC on Fashion-MNIST, CPU)",
                  [args, self] { return run_train(*args, **self); });
  *self = command;
  command
      ->add_option("--config", args->config_file,
                   "YAML file of config keys (configs/*.yaml); flags override it")
      ->type_name("FILE");
  add_key_options(*command, *args);
  add_refused_spellings(*command, args->refused);
  command->footer(
      std::string(
          "Writes to the run directory: config.yaml, classes.txt, metrics.csv, metrics.jsonl,\n"
          "curves.png, last.pth (every epoch, atomically), best.pth, checkpoint-NNN.pth.\n"
          "Ctrl-C writes a checkpoint at the next step and prints how to resume (--resume "
          "DIR).\n\n") +
      wrapped(image_format_limits()));
}

}  // namespace densenet::cli

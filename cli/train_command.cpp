// `densenet train`: every configuration key as a flag, over an optional YAML file.
#include "commands.h"
#include "launcher.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/data/image.h"
#include "densenet/distributed/environment.h"
#include "densenet/distributed/process_group.h"
#include "densenet/train/checkpointer.h"
#include "densenet/train/config.h"
#include "densenet/train/trainer.h"
#include "densenet/util/heap.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
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
  LaunchOptions launch;
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
    if (underscored != key.name) names += ",--" + underscored;            // the original's spelling
    for (const std::string& alias : key.aliases) names += ",--" + alias;  // e.g. timm's
    std::string& value = args.values[key.name];
    // A bool key is a flag that also takes a value, as the config file writes it:
    // `--sync-bn`, `--sync-bn false` and `--sync-bn=false` all work.
    CLI::Option* option = key.type == "bool" ? command.add_flag(names, value, help)->expected(0, 1)
                                             : command.add_option(names, value, help);
    if (key.type == "bool") {
      option->type_name("[BOOL]");
    } else {
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
    if (command.get_option("--resume")->count() > 0 && requested.resume.empty()) {
      // An unset shell variable, say: starting a new run instead would be a surprise.
      throw UsageError("--resume needs a run directory or checkpoint, got an empty value");
    }
    // A resumed run is checked once merged with its saved configuration (below): the keys given
    // alone may not make a valid run, and the refusal must name the key that cannot change.
    if (requested.resume.empty()) train::validate(requested);
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  // Where this process stands: the launcher, a rank (torchrun's variables), or the only process.
  distributed::Environment environment;
  try {
    environment = distributed::environment();
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  const LaunchOptions& launch = args.launch;
  const bool launcher = command.get_option("--nproc-per-node")->count() > 0;
  for (const char* flag : {"--nnodes", "--node-rank", "--master-addr", "--master-port"}) {
    if (command.get_option(flag)->count() > 0 && !launcher) {
      throw UsageError(std::string(flag) + " needs --nproc-per-node (the launcher's flags)");
    }
  }
  if (launcher) {
    if (std::getenv("WORLD_SIZE") != nullptr) {
      throw UsageError(
          "--nproc-per-node starts ranks, but this process is one already (WORLD_SIZE is set): "
          "use either torchrun or --nproc-per-node");
    }
    if (launch.nproc_per_node < 1 || launch.nnodes < 1) {
      throw UsageError("--nproc-per-node and --nnodes must be >= 1");
    }
    if (launch.node_rank < 0 || launch.node_rank >= launch.nnodes) {
      throw UsageError("--node-rank " + std::to_string(launch.node_rank) + " is outside [0, " +
                       "--nnodes=" + std::to_string(launch.nnodes) + ")");
    }
    if (launch.master_port < 0 || launch.master_port > 65535) {
      throw UsageError("--master-port " + std::to_string(launch.master_port) +
                       " is not a TCP port in [1, 65535]");
    }
    environment.world_size = launch.nproc_per_node * launch.nnodes;
  }
  train::TrainConfig config = requested;
  if (!requested.resume.empty()) {
    // Continue under the run's own configuration; what was given may only change where and how
    // fast it runs.
    train::TrainConfig saved;
    try {
      saved = train::saved_config(requested.resume);  // unreadable or corrupt: exit 1
    } catch (const c10::ValueError& error) {          // no such checkpoint: a usage error
      throw UsageError(error.what_without_backtrace());
    }
    try {
      config = train::resume_config(saved, requested, given);
      train::validate(config);
    } catch (const c10::Error& error) {
      throw UsageError(error.what_without_backtrace());
    }
    if (std::find(given.begin(), given.end(), "output-dir") == given.end()) {
      // Continue where the checkpoint is now: a run directory that was moved or copied is
      // written in its new place, never in the one its config names.
      const std::filesystem::path directory =
          std::filesystem::path(train::Checkpointer::resolve(requested.resume)).parent_path();
      config.output_dir = directory.empty() ? "." : directory.string();
    }
  }
  // Refused here, before any rank starts, as a command-line mistake; the trainer checks again.
  if (!config.output_dir.empty() && !config.test_only) {
    try {
      train::check_run_dir(
          config.output_dir, config,
          config.resume.empty() ? "" : train::Checkpointer::resolve(config.resume));
    } catch (const c10::Error& error) {
      throw UsageError(error.what_without_backtrace());
    }
  }
  if (config.batch_size % environment.world_size != 0) {
    throw UsageError("batch-size " + std::to_string(config.batch_size) +
                     " is not divisible by the world size " +
                     std::to_string(environment.world_size) +
                     ": batch-size is the global batch, split evenly over the ranks");
  }
  if (environment.distributed()) {
    try {
      distributed::choose_backend(config.dist_backend, torch::Device(config.device));
    } catch (const c10::Error& error) {
      throw UsageError(error.what_without_backtrace());
    }
  }
  if (launcher) return launch_local_ranks(launch, arguments_for_ranks());
  keep_freed_memory();
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::shared_ptr<distributed::ProcessGroup> group;
  if (environment.distributed()) {
    const auto timeout =
        std::chrono::milliseconds(static_cast<int64_t>(config.dist_timeout * 1000.0 + 0.5));
    group = std::make_shared<distributed::ProcessGroup>(environment, timeout, "gloo");
  }
  train::Trainer trainer(config, std::cout, train::is_terminal(stdout), group);
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
  // torchrun's flags, with its spellings (dashes or underscores).
  command
      ->add_option("--nproc-per-node,--nproc_per_node", args->launch.nproc_per_node,
                   "start this many ranks on this machine (data-parallel training)")
      ->group("Data-parallel launcher");
  command
      ->add_option("--nnodes", args->launch.nnodes,
                   "machines in the run, each started with --nproc-per-node [default: 1]")
      ->group("Data-parallel launcher");
  command
      ->add_option("--node-rank,--node_rank", args->launch.node_rank,
                   "this machine's index in [0, nnodes) [default: 0]")
      ->group("Data-parallel launcher");
  command
      ->add_option("--master-addr,--master_addr", args->launch.master_addr,
                   "host of rank 0 (the rendezvous store) [default: 127.0.0.1]")
      ->group("Data-parallel launcher");
  command
      ->add_option("--master-port,--master_port", args->launch.master_port,
                   "its TCP port [default: a free one on one machine, else 29500]")
      ->group("Data-parallel launcher");
  add_refused_spellings(*command, args->refused);
  command->footer(
      std::string(
          "Writes to the run directory: config.yaml, classes.txt, metrics.csv, metrics.jsonl,\n"
          "curves.png, last.pth (every epoch, atomically), best.pth, checkpoint-NNN.pth.\n"
          "Ctrl-C writes a checkpoint at the next step and prints how to resume (--resume "
          "DIR).\n"
          "Data-parallel: --nproc-per-node N starts N ranks (or run under torchrun --no_python);\n"
          "batch-size is the global batch; rank 0 alone prints and writes the run directory.\n\n") +
      wrapped(image_format_limits()));
}

}  // namespace densenet::cli

// `densenet train`: every configuration key as a flag, over an optional YAML file.
#include "commands.h"
#include "config_options.h"
#include "launcher.h"
#include "model_arguments.h"
#include "usage_error.h"

#include "densenet/data/image.h"
#include "densenet/distributed/environment.h"
#include "densenet/distributed/gpus.h"
#include "densenet/distributed/network.h"
#include "densenet/distributed/process_group.h"
#include "densenet/train/config.h"
#include "densenet/train/plan.h"
#include "densenet/train/trainer.h"
#include "densenet/util/heap.h"

#include <c10/util/Exception.h>
#include <torch/cuda.h>

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

// The keys of the YAML file, then the flags over them.
train::TrainRequest read_request(const TrainArguments& args, const CLI::App& command) {
  train::TrainRequest request;
  std::vector<std::string> given;
  if (!args.config_file.empty()) given = train::load_config_file(request.config, args.config_file);
  for (const train::ConfigKey& key : train::config_keys()) {
    if (command.get_option("--" + key.name)->count() == 0) continue;
    train::set_config_value(request.config, key.name, args.values.at(key.name));
    given.push_back(key.name);
  }
  request.given = std::move(given);
  return request;
}

// --gpus LIST: one rank per listed GPU, rank r on cuda:r of CUDA_VISIBLE_DEVICES=LIST (the
// device key becomes cuda). Returns the GPUs; their availability is checked after the plan.
std::vector<int64_t> place_on_gpus(LaunchOptions& launch, train::TrainRequest& request,
                                   const CLI::App& command) {
  const std::vector<int64_t> gpus = distributed::parse_gpus(launch.gpus);
  const auto count = static_cast<int64_t>(gpus.size());
  if (command.get_option("--nproc-per-node")->count() > 0 && launch.nproc_per_node != count) {
    throw UsageError("--gpus " + launch.gpus + " starts " + std::to_string(count) +
                     (count == 1 ? " rank" : " ranks") + ", --nproc-per-node " +
                     std::to_string(launch.nproc_per_node) + ": give one of them");
  }
  std::vector<std::string>& given = *request.given;
  const bool device_given = std::find(given.begin(), given.end(), "device") != given.end();
  if (device_given && request.config.device != "cuda") {
    throw UsageError("--gpus runs rank r on the r-th listed GPU (device cuda), and device is '" +
                     request.config.device + "': drop one of them");
  }
  request.config.device = "cuda";
  if (!device_given) given.emplace_back("device");
  launch.nproc_per_node = count;
  return gpus;
}

// The launcher's flags (torchrun's, and --gpus): the world size they make, or 0 when they are
// not given.
int64_t launcher_world_size(const LaunchOptions& launch, const CLI::App& command) {
  const bool gpus = command.get_option("--gpus")->count() > 0;
  const bool launcher = command.get_option("--nproc-per-node")->count() > 0 || gpus;
  for (const char* flag : {"--nnodes", "--node-rank", "--master-addr", "--master-port"}) {
    if (command.get_option(flag)->count() > 0 && !launcher) {
      throw UsageError(std::string(flag) +
                       " needs --nproc-per-node or --gpus (the launcher's flags)");
    }
  }
  if (!launcher) return 0;
  if (std::getenv("WORLD_SIZE") != nullptr) {
    const std::string flag = gpus ? "--gpus" : "--nproc-per-node";
    throw UsageError(flag +
                     " starts ranks, but this process is one already (WORLD_SIZE is set): use "
                     "either torchrun or " +
                     flag);
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
  return launch.nproc_per_node * launch.nnodes;
}

// Before the node's ranks start: the GPUs they compute on are there (--gpus: the listed ones;
// device cuda: cuda:0 to cuda:N-1), and CUDA_VISIBLE_DEVICES for --gpus.
void place_local_ranks(LaunchOptions& launch, const std::vector<int64_t>& gpus,
                       const std::string& device) {
  const auto device_count = static_cast<int64_t>(torch::cuda::device_count());
  if (!gpus.empty()) {
    launch.visible_devices =
        distributed::visible_devices_for(gpus, device_count, std::getenv("CUDA_VISIBLE_DEVICES"));
    return;
  }
  distributed::Environment first;  // rank_device's rule for this node's ranks
  first.launched = true;
  first.local_world_size = launch.nproc_per_node;
  // Refuses cuda:N for several ranks; cuda is cuda:LOCAL_RANK.
  const torch::Device on = distributed::rank_device(device, first);
  if (on.is_cuda() && !torch::Device(device).has_index()) {
    distributed::check_gpu_count(launch.nproc_per_node, device_count);
  }
}

// One process's run: a rank (torchrun's variables) or the only process.
int train_here(const train::TrainPlan& plan, const distributed::Environment& environment) {
  keep_freed_memory();
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::shared_ptr<distributed::ProcessGroup> group;
  if (environment.distributed()) {
    const auto timeout =
        std::chrono::milliseconds(static_cast<int64_t>(plan.config.dist_timeout * 1000.0 + 0.5));
    // NCCL's watchdog ends a rank from its own thread: the same one line as any error here.
    distributed::ProcessGroup::on_fatal_error([](const std::string& message) {
      std::fprintf(stderr, "densenet train: error: %s\n", message.c_str());
    });
    // Set before the model is built: rank r computes on cuda:LOCAL_RANK (device cuda).
    const torch::Device device = distributed::rank_device(plan.config.device, environment);
    group = std::make_shared<distributed::ProcessGroup>(environment, timeout, plan.backend,
                                                        plan.config.dist_ifname, device);
  }
  train::Trainer trainer(plan, std::cout, train::is_terminal(stdout), group);
  const train::RunSummary summary = trainer.run();
  // As a shell reports a process ended by the signal: 128 + its number (130 SIGINT, 143 SIGTERM).
  return summary.interrupted ? 128 + (stop_signal != 0 ? stop_signal : SIGINT) : 0;
}

// Every mistake is found here, once, before any rank starts: a c10::ValueError from the library
// (a key, a resume that would change the run, an occupied output-dir), which main() reports
// as a usage error.
int run_train(const TrainArguments& args, const CLI::App& command) {
  refuse_original_spellings(args.refused);
  train::TrainRequest request = read_request(args, command);
  LaunchOptions launch = args.launch;
  std::vector<int64_t> gpus;
  if (command.get_option("--gpus")->count() > 0) gpus = place_on_gpus(launch, request, command);
  const distributed::Environment environment = distributed::environment();
  const int64_t launched = launcher_world_size(launch, command);
  request.world_size = launched > 0 ? launched : environment.world_size;
  request.data_parallel = launched > 0 || environment.distributed();
  const train::TrainPlan plan = train::plan_training(request);
  if (!plan.backend.empty()) {
    // The rendezvous host and Gloo's interfaces, checked at once: the TCPStore would retry an
    // unresolvable name until dist-timeout runs out.
    distributed::check_resolves(
        launched > 0 ? launch.master_addr : environment.master_addr,
        launched > 0 ? "--master-addr" : "environment variable MASTER_ADDR");
    if (plan.backend == "gloo") {
      distributed::gloo_interfaces(plan.config.dist_ifname, std::getenv("GLOO_SOCKET_IFNAME"));
    }
  }
  if (launched > 0) {
    place_local_ranks(launch, gpus, plan.config.device);
    return launch_local_ranks(launch, arguments_for_ranks(gpus.empty() ? "" : "cuda"));
  }
  return train_here(plan, environment);
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
  for (const train::ConfigKey& key : train::config_keys()) {
    add_config_option(*command, key, args->values, key.model ? "Model" : "Training");
  }
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
  command
      ->add_option("--gpus", args->launch.gpus,
                   "start one rank per listed GPU (e.g. 0,1,2,3), rank r on the r-th "
                   "(CUDA_VISIBLE_DEVICES=LIST, cuda:LOCAL_RANK); implies device cuda")
      ->type_name("LIST")
      ->group("Data-parallel launcher");
  add_refused_spellings(*command, args->refused);
  command->footer(
      std::string(
          "Writes to the run directory: config.yaml, classes.txt, metrics.csv, metrics.jsonl,\n"
          "curves.png, last.pth (every epoch, atomically), best.pth, best_ema.pth (model-ema),\n"
          "checkpoint-NNN.pth (save-interval), events.out.tfevents.* (TensorBoard).\n"
          "Ctrl-C writes a checkpoint at the next step and prints how to resume (--resume "
          "DIR).\n"
          "Data-parallel: --nproc-per-node N starts N ranks (or run under torchrun --no_python),\n"
          "--gpus 0,1 one rank per GPU (NCCL);\n"
          "batch-size is the global batch; rank 0 alone prints and writes the run directory.\n\n") +
      wrapped(image_format_limits()));
}

}  // namespace densenet::cli

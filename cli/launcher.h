#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace densenet::cli {

/// `densenet train --nproc-per-node N [--nnodes M --node-rank R --master-addr A
/// --master-port P]`: torchrun's static launch, for this program; or `--gpus 0,1,2,3`: one rank
/// per listed GPU.
struct LaunchOptions {
  int64_t nproc_per_node = 0;  // local ranks to start; 0 = no launcher
  int64_t nnodes = 1;
  int64_t node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;  // 0: a free port (one node), torchrun's 29500 (several)
  std::string gpus;         // --gpus as given
  // CUDA_VISIBLE_DEVICES for every rank (--gpus: distributed::visible_devices_for); "": the
  // launcher's own is inherited.
  std::string visible_devices;
};

/// The launcher's own flags, which are not forwarded to the ranks.
bool is_launcher_flag(const std::string& name);

/// This process's command line (from /proc/self/cmdline) without argv[0] and without the
/// launcher's flags and their values; with `--device DEVICE` in place of any --device given when
/// `device` is not empty.
std::vector<std::string> arguments_for_ranks(const std::string& device = "");

/// Starts the node's ranks: this program again with `args` and the variables torchrun sets
/// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; and
/// CUDA_VISIBLE_DEVICES for --gpus: distributed::rank_environment), each in its own
/// process group so that a terminal's Ctrl-C reaches them once, through the launcher, which
/// forwards SIGINT and SIGTERM. Waits for all; when one fails, it says which (unless the rank
/// said why itself), ends the others (SIGTERM and SIGCONT, SIGKILL 5 s later), passes on no
/// more error lines (theirs follow from the first) and returns that rank's status (128 + signal
/// for a signal). Returns 0 when every rank succeeded.
int launch_local_ranks(const LaunchOptions& options, const std::vector<std::string>& args);

}  // namespace densenet::cli

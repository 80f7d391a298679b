#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace densenet::distributed {

/// Where this process stands in a data-parallel run, from the variables torchrun (and
/// `densenet train --nproc-per-node` or `--gpus`) set: RANK, WORLD_SIZE, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE,
/// TORCHELASTIC_RESTART_COUNT.
struct Environment {
  int64_t rank = 0;        // this process's index among all processes, in [0, world_size)
  int64_t world_size = 1;  // processes in the run, over all nodes
  int64_t local_rank = 0;  // index among the processes of this machine
  int64_t local_world_size = 1;
  std::string master_addr;  // host of the rendezvous store (rank 0's, or the elastic agent's)
  int64_t master_port = 0;
  // True under torchrun's elastic agent: the agent hosts the store and every rank is a client.
  bool agent_store = false;
  int64_t restart_count = 0;  // TORCHELASTIC_RESTART_COUNT: keys of each attempt are separate
  // RANK and WORLD_SIZE were set: a rank that torchrun or the launcher started, data-parallel
  // even alone (WORLD_SIZE=1), as torchvision's references take these variables.
  bool launched = false;

  bool distributed() const { return launched || world_size > 1; }
};

/// Reads the variables through `lookup` (getenv's contract: nullptr when unset). No WORLD_SIZE
/// (and no RANK), or WORLD_SIZE=1 alone, is a single process. Throws c10::ValueError with one
/// line naming the variable for a value that is not a whole number, RANK >= WORLD_SIZE,
/// LOCAL_RANK >= LOCAL_WORLD_SIZE, a missing RANK with WORLD_SIZE > 1, a missing MASTER_ADDR or
/// MASTER_PORT with RANK, a port outside [1, 65535].
Environment environment_from(const std::function<const char*(const char*)>& lookup);

/// environment_from(std::getenv).
Environment environment();

/// The environment of a rank that the launcher starts, as NAME=VALUE entries: `inherited` less
/// the variables below, then RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
/// MASTER_PORT from `rank`, and CUDA_VISIBLE_DEVICES=`visible_devices` unless that is empty
/// (an inherited CUDA_VISIBLE_DEVICES then stays). TORCHELASTIC_USE_AGENT_STORE is dropped: the
/// launcher's rank 0 hosts the store. environment_from() reads `rank` back from the result.
std::vector<std::string> rank_environment(const std::vector<std::string>& inherited,
                                          const Environment& rank,
                                          const std::string& visible_devices);

}  // namespace densenet::distributed

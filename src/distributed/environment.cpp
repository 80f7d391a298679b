#include "densenet/distributed/environment.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>

namespace densenet::distributed {
namespace {

// A variable's whole value as an integer: "2x", "", " 1" and overflow are mistakes, not 2, 0, 1.
std::optional<int64_t> integer_variable(const std::function<const char*(const char*)>& lookup,
                                        const char* name) {
  const char* text = lookup(name);
  if (text == nullptr) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  TORCH_CHECK_VALUE(*text != '\0' && *end == '\0' && errno == 0 && *text != ' ',
                    "environment variable ", name, "='", text, "' is not a whole number");
  return static_cast<int64_t>(value);
}

}  // namespace

Environment environment_from(const std::function<const char*(const char*)>& lookup) {
  Environment env;
  const std::optional<int64_t> world_size = integer_variable(lookup, "WORLD_SIZE");
  const std::optional<int64_t> rank = integer_variable(lookup, "RANK");
  const std::optional<int64_t> local_rank = integer_variable(lookup, "LOCAL_RANK");
  const std::optional<int64_t> local_world_size = integer_variable(lookup, "LOCAL_WORLD_SIZE");
  const std::optional<int64_t> port = integer_variable(lookup, "MASTER_PORT");
  if (!world_size) {
    TORCH_CHECK_VALUE(!rank, "environment variable RANK=", *rank,
                      " is set but WORLD_SIZE is not: set both (torchrun does), or neither for one "
                      "process");
    return env;
  }
  TORCH_CHECK_VALUE(*world_size >= 1, "environment variable WORLD_SIZE=", *world_size,
                    " must be >= 1");
  env.world_size = *world_size;
  if (env.world_size == 1 && !rank) return env;
  TORCH_CHECK_VALUE(rank.has_value(), "environment variable WORLD_SIZE=", env.world_size,
                    " is set but RANK is not: set RANK to this process's index in [0, ",
                    env.world_size, ")");
  TORCH_CHECK_VALUE(*rank >= 0 && *rank < env.world_size, "environment variable RANK=", *rank,
                    " is outside [0, WORLD_SIZE=", env.world_size, ")");
  env.rank = *rank;
  // Without the local variables, every rank is taken to be on this machine (one node).
  env.local_world_size = local_world_size.value_or(env.world_size);
  env.local_rank = local_rank.value_or(env.rank);
  TORCH_CHECK_VALUE(env.local_world_size >= 1 && env.local_world_size <= env.world_size,
                    "environment variable LOCAL_WORLD_SIZE=", env.local_world_size,
                    " must be in [1, WORLD_SIZE=", env.world_size, "]");
  TORCH_CHECK_VALUE(env.local_rank >= 0 && env.local_rank < env.local_world_size,
                    "environment variable LOCAL_RANK=", env.local_rank,
                    " is outside [0, LOCAL_WORLD_SIZE=", env.local_world_size, ")");
  TORCH_CHECK_VALUE(env.world_size % env.local_world_size == 0, "WORLD_SIZE=", env.world_size,
                    " is not a multiple of LOCAL_WORLD_SIZE=", env.local_world_size,
                    ": every node must run the same number of processes");
  env.launched = true;
  const char* addr = lookup("MASTER_ADDR");
  TORCH_CHECK_VALUE(addr != nullptr && *addr != '\0',
                    "environment variable MASTER_ADDR is not set: give the host of rank 0 (e.g. "
                    "127.0.0.1 on one machine)");
  env.master_addr = addr;
  TORCH_CHECK_VALUE(
      port.has_value(),
      "environment variable MASTER_PORT is not set: give a free TCP port on MASTER_ADDR "
      "(e.g. 29500)");
  TORCH_CHECK_VALUE(*port >= 1 && *port <= 65535, "environment variable MASTER_PORT=", *port,
                    " is not a TCP port in [1, 65535]");
  env.master_port = *port;
  const char* agent = lookup("TORCHELASTIC_USE_AGENT_STORE");
  env.agent_store = agent != nullptr && std::string(agent) == "True";
  env.restart_count = integer_variable(lookup, "TORCHELASTIC_RESTART_COUNT").value_or(0);
  return env;
}

Environment environment() {
  return environment_from([](const char* name) { return std::getenv(name); });
}

std::vector<std::string> rank_environment(const std::vector<std::string>& inherited,
                                          const Environment& rank,
                                          const std::string& visible_devices) {
  std::vector<std::string> replaced = {"RANK=",
                                       "WORLD_SIZE=",
                                       "LOCAL_RANK=",
                                       "LOCAL_WORLD_SIZE=",
                                       "MASTER_ADDR=",
                                       "MASTER_PORT=",
                                       "TORCHELASTIC_USE_AGENT_STORE="};
  if (!visible_devices.empty()) replaced.emplace_back("CUDA_VISIBLE_DEVICES=");
  std::vector<std::string> variables;
  for (const std::string& variable : inherited) {
    const bool ours = std::any_of(replaced.begin(), replaced.end(), [&](const std::string& name) {
      return variable.compare(0, name.size(), name) == 0;
    });
    if (!ours) variables.push_back(variable);
  }
  variables.push_back("RANK=" + std::to_string(rank.rank));
  variables.push_back("WORLD_SIZE=" + std::to_string(rank.world_size));
  variables.push_back("LOCAL_RANK=" + std::to_string(rank.local_rank));
  variables.push_back("LOCAL_WORLD_SIZE=" + std::to_string(rank.local_world_size));
  variables.push_back("MASTER_ADDR=" + rank.master_addr);
  variables.push_back("MASTER_PORT=" + std::to_string(rank.master_port));
  if (!visible_devices.empty()) variables.push_back("CUDA_VISIBLE_DEVICES=" + visible_devices);
  return variables;
}

}  // namespace densenet::distributed

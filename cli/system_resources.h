#pragma once

#include <cstdint>
#include <string>

namespace densenet::cli {

/// Memory this process can still take, with where the number came from: the smaller of
/// /proc/meminfo's MemAvailable and the cgroup v2 limit (memory.max - memory.current).
/// `bytes` is 0 when neither can be read.
struct AvailableMemory {
  int64_t bytes = 0;
  std::string source;  // "MemAvailable" or "cgroup memory.max"
};
AvailableMemory available_memory();

/// CPUs this process may run on (sched_getaffinity, which honours taskset and container CPU
/// sets), or std::thread::hardware_concurrency where that fails.
int usable_cpus();

}  // namespace densenet::cli

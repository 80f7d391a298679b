#pragma once

#include <cstdint>
#include <string>

namespace densenet {

/// Where the machine's figures are read from. The defaults are the kernel's files; tests point
/// them at a fake tree. The environment variable DENSENET_CGROUP_ROOT, when set, replaces
/// `cgroup_root` (for tests of the programs, which cannot be given a struct).
struct MachinePaths {
  std::string meminfo = "/proc/meminfo";
  std::string cgroup_root = "/sys/fs/cgroup";
};

/// Memory this process can still take, and which limit decided it.
struct AvailableMemory {
  int64_t bytes = 0;   // 0 when nothing could be read
  std::string source;  // "MemAvailable", "cgroup memory.max" (v2) or "cgroup
                       // memory.limit_in_bytes" (v1)
};

/// The smallest of: /proc/meminfo's MemAvailable; a cgroup v2 limit (memory.max minus
/// memory.current); a cgroup v1 limit (memory/memory.limit_in_bytes minus
/// memory/memory.usage_in_bytes). Batch schedulers (Slurm, Kubernetes) and container runtimes
/// set one of the two cgroup limits; the kernel's OOM killer enforces it whatever MemAvailable
/// says, so a plan that ignores it can be killed without a word. Never throws.
AvailableMemory available_memory(const MachinePaths& paths = {});

/// CPUs this process may run on: sched_getaffinity (which honours taskset, cpusets and Slurm's
/// binding), or std::thread::hardware_concurrency where that fails; at least 1.
int usable_cpus();

}  // namespace densenet

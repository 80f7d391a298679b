#include "densenet/util/machine.h"

#include <sched.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace densenet {
namespace {

// One number from a file such as memory.max; -1 for "max" (no limit) or unreadable.
int64_t read_number(const std::string& path) {
  std::ifstream stream(path);
  long long value = -1;
  if (!(stream >> value)) return -1;
  return value;
}

int64_t mem_available(const std::string& meminfo) {
  std::ifstream stream(meminfo);
  std::string line;
  while (std::getline(stream, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    long long kib = 0;
    return fields >> kib ? kib * 1024 : 0;
  }
  return 0;
}

// What a cgroup limit leaves: limit - usage, or -1 without a limit. cgroup v1 reports "no
// limit" as a huge number (PAGE_COUNTER_MAX pages), larger than any machine: treated as none.
int64_t left_under(const std::string& limit_file, const std::string& usage_file) {
  constexpr int64_t kNoLimit = int64_t{1} << 60;
  const int64_t limit = read_number(limit_file);
  const int64_t used = read_number(usage_file);
  if (limit <= 0 || limit >= kNoLimit || used < 0) return -1;
  return limit > used ? limit - used : 0;
}

}  // namespace

AvailableMemory available_memory(const MachinePaths& paths) {
  std::string root = paths.cgroup_root;
  if (const char* override_root = std::getenv("DENSENET_CGROUP_ROOT")) root = override_root;
  AvailableMemory result{mem_available(paths.meminfo), "MemAvailable"};
  const auto take = [&](int64_t left, const char* source) {
    if (left >= 0 && (result.bytes == 0 || left < result.bytes)) result = {left, source};
  };
  take(left_under(root + "/memory.max", root + "/memory.current"), "cgroup memory.max");
  take(left_under(root + "/memory/memory.limit_in_bytes", root + "/memory/memory.usage_in_bytes"),
       "cgroup memory.limit_in_bytes");
  if (result.bytes == 0) result.source.clear();
  return result;
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware > 0 ? static_cast<int>(hardware) : 1;
}

}  // namespace densenet

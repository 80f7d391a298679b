#include "system_resources.h"

#include <sched.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

namespace densenet::cli {

namespace {

// One number from a file such as /sys/fs/cgroup/memory.max; -1 for "max" or unreadable.
int64_t read_number(const std::string& path) {
  std::ifstream stream(path);
  long long value = -1;
  if (!(stream >> value)) return -1;
  return value;
}

}  // namespace

AvailableMemory available_memory() {
  AvailableMemory result;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream fields(line.substr(13));
      long long kib = 0;
      if (fields >> kib) result = {kib * 1024, "MemAvailable"};
      break;
    }
  }
  const int64_t limit = read_number("/sys/fs/cgroup/memory.max");
  const int64_t used = read_number("/sys/fs/cgroup/memory.current");
  if (limit > 0 && used >= 0) {
    const int64_t left = limit > used ? limit - used : 0;
    if (result.bytes == 0 || left < result.bytes) result = {left, "cgroup memory.max"};
  }
  return result;
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware > 0 ? static_cast<int>(hardware) : 1;
}

}  // namespace densenet::cli

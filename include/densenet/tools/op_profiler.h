#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace densenet {

/// Self time per operation while a profiler is alive: every ATen operator, autograd node and
/// this library's kernels (which mark themselves with RECORD_USER_SCOPE), collected through
/// LibTorch's RecordFunction callbacks. Self time is an operation's wall time minus that of the
/// operations it called, so the entries add up to the profiled wall time and nothing is counted
/// twice. One profiler at a time; a few microseconds of overhead per operation.
class OpProfiler {
 public:
  struct Entry {
    std::string name;
    double self_ms = 0;
    int64_t calls = 0;
  };

  OpProfiler();
  ~OpProfiler();
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;

  /// Entries so far, largest self time first.
  std::vector<Entry> entries() const;
  void reset();

 private:
  uint64_t handle_;
};

}  // namespace densenet

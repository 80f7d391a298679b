#include "densenet/train/memory_choice.h"

#include "densenet/model/memory_plan.h"
#include "densenet/tools/memory_tracker.h"

#include <c10/util/Exception.h>

#include <fstream>
#include <limits>
#include <sstream>

namespace densenet::train {

std::vector<MemoryMode> memory_modes_by_speed(c10::DeviceType device) {
  if (device == c10::DeviceType::CUDA) {
    return {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal};
  }
  return {MemoryMode::kEfficient, MemoryMode::kMinimal, MemoryMode::kNaive};
}

int64_t predicted_step_bytes(const ArchitecturePlan& plan, MemoryMode mode, int64_t batch_size,
                             int64_t num_batch_splits, int64_t optimizer_copies) {
  const int64_t piece = (batch_size + num_batch_splits - 1) / num_batch_splits;
  const MemoryPlan memory = plan_memory(plan, mode);
  const int64_t parameters = plan.num_parameters() * 4 * (2 + optimizer_copies);
  const int64_t inputs =
      2 * batch_size * plan.options.in_channels() * plan.input_size * plan.input_size * 4;
  const int64_t limit = std::numeric_limits<int64_t>::max() / 2;
  TORCH_CHECK(memory.peak_bytes == 0 || piece <= limit / memory.peak_bytes,
              "the memory needed overflows: batch ", batch_size, " is far too large");
  return memory.peak_bytes * piece + parameters + inputs;
}

MemoryChoice choose_memory(const ArchitecturePlan& plan, int64_t batch_size, int64_t budget_bytes,
                           c10::DeviceType device, int64_t optimizer_copies) {
  TORCH_CHECK(budget_bytes > 0, "memory-budget must be > 0 bytes, got ", budget_bytes);
  const std::vector<MemoryMode> modes = memory_modes_by_speed(device);
  const int64_t fastest_need =
      predicted_step_bytes(plan, modes.front(), batch_size, 1, optimizer_copies);
  int64_t smallest_need = std::numeric_limits<int64_t>::max();
  for (int64_t splits = 1; splits <= batch_size; splits *= 2) {
    for (const MemoryMode mode : modes) {
      const int64_t need = predicted_step_bytes(plan, mode, batch_size, splits, optimizer_copies);
      smallest_need = std::min(smallest_need, need);
      if (need > budget_bytes) continue;
      MemoryChoice choice;
      choice.mode = mode;
      choice.num_batch_splits = splits;
      choice.predicted_bytes = need;
      choice.budget_bytes = budget_bytes;
      std::ostringstream reason;
      reason << memory_mode_name(mode) << ", " << splits << (splits == 1 ? " split" : " splits")
             << ": " << format_bytes(need) << " of the " << format_bytes(budget_bytes) << " budget";
      if (mode != modes.front() || splits > 1) {
        reason << " (" << memory_mode_name(modes.front()) << " without splits needs "
               << format_bytes(fastest_need) << ")";
      } else {
        reason << " (the fastest mode on this device)";
      }
      choice.reason = reason.str();
      return choice;
    }
    if (splits > std::numeric_limits<int64_t>::max() / 2) break;
  }
  TORCH_CHECK(false, "no memory mode fits batch ", batch_size, " in ", format_bytes(budget_bytes),
              ": the smallest need is ", format_bytes(smallest_need),
              " (minimal mode, one sample per piece); raise memory-budget or use a smaller model");
}

int64_t default_memory_budget() {
  std::ifstream meminfo("/proc/meminfo");
  std::string name;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> name >> kib >> unit) {
    if (name == "MemAvailable:") return kib * 1024 / 10 * 8;
  }
  TORCH_CHECK(false, "cannot read MemAvailable from /proc/meminfo: give memory-budget, e.g. 4GiB");
}

}  // namespace densenet::train

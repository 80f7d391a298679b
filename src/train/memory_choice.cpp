#include "densenet/train/memory_choice.h"

#include "densenet/model/memory_plan.h"
#include "densenet/tools/memory_tracker.h"

#include <c10/util/Exception.h>

#include <limits>
#include <sstream>

namespace densenet::train {

std::vector<MemoryMode> memory_modes_by_speed(c10::DeviceType device) {
  if (device == c10::DeviceType::CUDA) {
    return {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal};
  }
  return {MemoryMode::kEfficient, MemoryMode::kMinimal, MemoryMode::kNaive};
}

MemoryChoice choose_memory(const ArchitecturePlan& plan, int64_t batch_size, int64_t budget_bytes,
                           c10::DeviceType device, int64_t optimizer_copies,
                           std::optional<c10::ScalarType> amp) {
  TORCH_CHECK(budget_bytes > 0, "memory-budget must be > 0 bytes, got ", budget_bytes);
  const std::vector<MemoryMode> modes = memory_modes_by_speed(device);
  const int64_t fastest_need =
      predicted_step_bytes(plan, modes.front(), batch_size, 1, optimizer_copies, device, amp);
  int64_t smallest_need = std::numeric_limits<int64_t>::max();
  for (int64_t splits = 1; splits <= batch_size; splits *= 2) {
    for (const MemoryMode mode : modes) {
      const int64_t need =
          predicted_step_bytes(plan, mode, batch_size, splits, optimizer_copies, device, amp);
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

int64_t default_memory_budget(const AvailableMemory& available) {
  TORCH_CHECK(available.bytes > 0,
              "cannot read the available memory (/proc/meminfo, the cgroup limits): give "
              "memory-budget, e.g. 4GiB");
  return available.bytes / 10 * 8;
}

}  // namespace densenet::train

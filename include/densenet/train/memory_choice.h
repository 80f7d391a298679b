#pragma once

#include "densenet/model/architecture.h"
#include "densenet/model/memory_plan.h"
#include "densenet/util/machine.h"

#include <c10/core/DeviceType.h>

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace densenet::train {

/// What `memory: auto` picked and why.
struct MemoryChoice {
  MemoryMode mode = MemoryMode::kEfficient;
  int64_t num_batch_splits = 1;
  int64_t predicted_bytes = 0;  // activation peak of one piece + parameter/optimiser state
  int64_t budget_bytes = 0;
  std::string reason;  // one line: "efficient, 1 split: 1.2 GiB of 4 GiB (naive needs 9.1 GiB)"
};

/// The memory modes from fastest to slowest on `device`, as measured by `densenet bench`
/// (docs/BENCHMARKS.md): on the CPU efficient < minimal < naive in step time (densenet-bc-100,
/// batch 64, 2 threads: 0.61x, 0.72x, 1x of naive); on CUDA naive < efficient < minimal.
std::vector<MemoryMode> memory_modes_by_speed(c10::DeviceType device);

/// The fastest mode, then the fewest batch splits (1, 2, 4, ... up to the batch size), whose
/// predicted_step_bytes fits `budget_bytes`: fewer splits are tried first because a smaller
/// piece costs more time than a slower mode. Throws c10::Error with the smallest need when
/// nothing fits. `amp`: the autocast dtype (nullopt for none), which sets the activations' size.
MemoryChoice choose_memory(const ArchitecturePlan& plan, int64_t batch_size, int64_t budget_bytes,
                           c10::DeviceType device, int64_t optimizer_copies,
                           std::optional<c10::ScalarType> amp = std::nullopt);

/// 80% of the memory this process can still take (available_memory: MemAvailable or a cgroup
/// limit, whichever is smaller): what `memory: auto` uses without a memory-budget. Throws
/// c10::Error where nothing can be read.
int64_t default_memory_budget(const AvailableMemory& available = available_memory());

}  // namespace densenet::train

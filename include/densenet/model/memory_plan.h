#pragma once

#include "densenet/model/architecture.h"

#include <cstdint>
#include <vector>

namespace densenet {

/// Activation memory of one training step (forward + backward), per sample, as the design of
/// each memory mode implies it: what is kept from forward for backward, and the peak including
/// the transient buffers of the stage being differentiated. Parameters, their gradients and
/// the input batch are not included (see `densenet bench`, which measures the same quantity).
struct MemoryPlan {
  MemoryMode mode;
  int64_t element_size = 4;
  int64_t kept_bytes = 0;  // held from the end of forward until backward reaches it
  int64_t peak_bytes = 0;  // the largest total during the step
  int64_t peak_stage = 0;  // 1-based stage (block) where the peak falls
  /// Per stage: kept bytes (block buffer F, plus kept bottleneck outputs in efficient mode).
  std::vector<int64_t> stage_kept_bytes;
};

/// Bytes per sample for `plan` (its input size) in `mode`; element_size 4 for float32.
MemoryPlan plan_memory(const ArchitecturePlan& plan, MemoryMode mode, int64_t element_size = 4);

}  // namespace densenet

#pragma once

#include "densenet/model/architecture.h"

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
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

/// Bytes per sample for `plan` (its input size) in `mode`; element_size 4 for float32, 2 for
/// 16-bit activations (activation_element_size).
MemoryPlan plan_memory(const ArchitecturePlan& plan, MemoryMode mode, int64_t element_size = 4);

/// Bytes per element of the activations plan_memory counts, for a training step in `mode` on
/// `device` under autocast to `amp` (nullopt: amp none). 2 where they are 16-bit: naive's on any
/// device under bfloat16/float16 autocast (autocast's convolutions and the norms and ReLUs after
/// them give 16-bit outputs, which autograd keeps), and efficient's and minimal's on the CPU and
/// CUDA, whose stages then keep their buffers in the autocast dtype (model/dense_stage.cpp).
/// Otherwise 4 (float32).
int64_t activation_element_size(MemoryMode mode, c10::DeviceType device,
                                std::optional<c10::ScalarType> amp);

/// The memory of one training step, as `densenet train` (its refusal of a step that cannot fit,
/// `memory: auto`) and `densenet bench` (its refusal, --max-batch's first guess) predict it: the
/// one formula all three use. Parameters, their gradients and the input are float32 under amp
/// too; the activations are as activation_element_size says.
struct StepMemory {
  int64_t activations_per_sample = 0;  // plan_memory(...).peak_bytes: per image of a piece
  int64_t input_per_sample = 0;        // one float32 input image (C x S x S x 4 bytes)
  int64_t input_batches = 1;           // input batches alive at once
  int64_t fixed = 0;  // parameters, their gradients and the optimiser's copies of them

  /// Bytes of a step of `batch` images run in `splits` pieces: the activations of the largest
  /// piece, ceil(batch / splits) images, plus input_batches whole input batches, plus `fixed`.
  /// Saturates at INT64_MAX (a need that large is refused anyway).
  int64_t bytes(int64_t batch, int64_t splits = 1) const;
};

/// `optimizer_copies`: float32 copies of the parameters the optimiser keeps (0 none, as bench's
/// step; 1 SGD's momentum; 2 AdamW's moments). `input_batches`: 1 for bench, 2 for train (the
/// batch in use and the one the loader has prefetched). `device` and `amp` (the autocast dtype,
/// nullopt for none) set the activations' element size.
StepMemory plan_step_memory(const ArchitecturePlan& plan, MemoryMode mode, int64_t optimizer_copies,
                            int64_t input_batches, c10::DeviceType device = c10::DeviceType::CPU,
                            std::optional<c10::ScalarType> amp = std::nullopt);

/// plan_step_memory(plan, mode, optimizer_copies, 2, device, amp).bytes(batch, splits): what a
/// training step of `densenet train` needs.
int64_t predicted_step_bytes(const ArchitecturePlan& plan, MemoryMode mode, int64_t batch_size,
                             int64_t num_batch_splits, int64_t optimizer_copies,
                             c10::DeviceType device = c10::DeviceType::CPU,
                             std::optional<c10::ScalarType> amp = std::nullopt);

}  // namespace densenet

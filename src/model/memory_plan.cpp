#include "densenet/model/memory_plan.h"

#include "model/stage_chunks.h"

#include <algorithm>
#include <limits>

namespace densenet {

namespace {

using detail::kCpuBottleneckChunks;
using detail::kCpuChunks;

/// Elements per sample kept by the stem between forward and backward. The small stem keeps
/// nothing but the input; the ImageNet stem keeps conv0's output (for norm0), the ReLU output
/// (for max-pool) and the max-pool indices (int64, counted as two float elements).
int64_t stem_kept_elements(const ArchitecturePlan& plan) {
  if (plan.options.uses_small_stem()) return 0;
  const int64_t c0 = plan.options.num_init_features();
  const int64_t conv_side = (plan.input_size + 2 * 3 - 7) / 2 + 1;
  const int64_t pooled = plan.stem_out_spatial * plan.stem_out_spatial;
  return 2 * c0 * conv_side * conv_side + 2 * c0 * pooled;
}

}  // namespace

MemoryPlan plan_memory(const ArchitecturePlan& plan, MemoryMode mode, int64_t element_size) {
  MemoryPlan result;
  result.mode = mode;
  result.element_size = element_size;
  const bool bottleneck = plan.options.bn_size() > 0;
  const size_t stages = plan.blocks.size();
  std::vector<int64_t> kept(stages), transient(stages);
  for (size_t b = 0; b < stages; ++b) {
    const BlockPlan& block = plan.blocks[b];
    const int64_t area = block.spatial * block.spatial;
    const int64_t k = block.growth_rate, width = block.bottleneck_width;
    const int64_t c_total = block.out_channels;
    const bool last = block.transition_out_channels == 0;
    if (mode == MemoryMode::kNaive) {
      // Plain autograd per layer: the concatenation (kept by norm1), the ReLU output (kept by
      // conv1), for BC layers conv1's output (norm2) and the second ReLU output (conv2); per
      // block the final concatenation, kept by the transition's norm with its ReLU output
      // and the convolution output (average pooling's input).
      int64_t elements = 0;
      for (int64_t l = 0; l < block.num_layers; ++l) {
        elements += 2 * block.layer_in_channels(l) * area + (bottleneck ? 2 * width * area : 0);
      }
      elements += 2 * c_total * area;
      if (!last) elements += block.transition_out_channels * area;
      kept[b] = elements;
      // Backward of the block: the gradient of its output, of the concatenations being split,
      // and of one layer's intermediates.
      transient[b] = 3 * c_total * area + (bottleneck ? 3 * width * area : 0);
      continue;
    }
    // Efficient and minimal: the block buffer F; efficient also keeps each layer's bottleneck
    // output (conv1), B channels.
    kept[b] = c_total * area;
    if (mode == MemoryMode::kEfficient && bottleneck) kept[b] += block.num_layers * width * area;
    // Backward of the stage (src/model/dense_stage.cpp). Buffers are allocated when needed and
    // released after use; convolutions run over kCpuChunks chunks of the batch, so oneDNN's
    // reordered copies of a convolution's input and output gradient, and its input gradient
    // before it is written back, exist one chunk at a time (~3 input-sized chunk buffers).
    // The tail: dF. The transition's BN-ReLU and convolution run fused a sample at a time
    // (kernels/norm_relu_conv1x1.h), so nothing else block-sized exists.
    const int64_t tail = c_total * area;
    // Then per layer, beside dF: BC layers run their BN-ReLU and 1x1 convolution fused, so only
    // the ReLU2 output (and Y1, recomputed, in minimal) and the 3x3 convolution's chunk buffers
    // are there; plain layers have the recomputed BN-ReLU of their input (the widest is
    // C_L - k) and chunk buffers of it.
    int64_t layer = c_total * area + k * area;
    if (bottleneck) {
      // The 3x3 convolution backward runs in 8 chunks in minimal, 2 in efficient.
      const int64_t chunks = mode == MemoryMode::kMinimal ? kCpuChunks : kCpuBottleneckChunks;
      layer += (mode == MemoryMode::kMinimal ? 2 : 1) * width * area + 3 * width * area / chunks;
    } else {
      const int64_t widest_input = (c_total - k) * area;
      layer += widest_input + 3 * widest_input / kCpuChunks;
    }
    transient[b] = std::max(tail, layer);
  }
  // Backward runs from the last stage to the first; stage b's transients coexist with what
  // stages 1..b keep.
  int64_t kept_before = stem_kept_elements(plan);
  int64_t total_kept = kept_before;
  for (size_t b = 0; b < stages; ++b) total_kept += kept[b];
  int64_t peak = 0;
  for (size_t b = 0; b < stages; ++b) {
    const int64_t during = kept_before + kept[b] + transient[b];
    if (during > peak) {
      peak = during;
      result.peak_stage = static_cast<int64_t>(b) + 1;
    }
    kept_before += kept[b];
  }
  result.kept_bytes = total_kept * element_size;
  result.peak_bytes = std::max(peak, total_kept) * element_size;
  for (int64_t elements : kept) result.stage_kept_bytes.push_back(elements * element_size);
  return result;
}

int64_t activation_element_size(MemoryMode mode, c10::DeviceType device,
                                std::optional<c10::ScalarType> amp) {
  if (amp != c10::ScalarType::BFloat16 && amp != c10::ScalarType::Half) return 4;
  if (mode == MemoryMode::kNaive) return 2;
  // The stages' own dtype (detail::stage_compute_dtype): 16-bit on the devices they have
  // kernels for.
  return device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA ? 2 : 4;
}

namespace {

// a * b + c, saturating at INT64_MAX.
int64_t saturating(int64_t a, int64_t b, int64_t c = 0) {
  int64_t product = 0, sum = 0;
  if (__builtin_mul_overflow(a, b, &product) || __builtin_add_overflow(product, c, &sum)) {
    return std::numeric_limits<int64_t>::max();
  }
  return sum;
}

}  // namespace

int64_t StepMemory::bytes(int64_t batch, int64_t splits) const {
  const int64_t piece = (batch + splits - 1) / std::max<int64_t>(splits, 1);
  const int64_t inputs = saturating(input_per_sample, saturating(batch, input_batches));
  return saturating(activations_per_sample, piece, saturating(1, inputs, fixed));
}

StepMemory plan_step_memory(const ArchitecturePlan& plan, MemoryMode mode, int64_t optimizer_copies,
                            int64_t input_batches, c10::DeviceType device,
                            std::optional<c10::ScalarType> amp) {
  StepMemory step;
  step.activations_per_sample =
      plan_memory(plan, mode, activation_element_size(mode, device, amp)).peak_bytes;
  step.input_per_sample = saturating(saturating(plan.options.in_channels(), plan.input_size),
                                     saturating(plan.input_size, 4));
  step.input_batches = input_batches;
  step.fixed = saturating(plan.num_parameters(), 4 * (2 + optimizer_copies));
  return step;
}

int64_t predicted_step_bytes(const ArchitecturePlan& plan, MemoryMode mode, int64_t batch_size,
                             int64_t num_batch_splits, int64_t optimizer_copies,
                             c10::DeviceType device, std::optional<c10::ScalarType> amp) {
  return plan_step_memory(plan, mode, optimizer_copies, 2, device, amp)
      .bytes(batch_size, num_batch_splits);
}

}  // namespace densenet

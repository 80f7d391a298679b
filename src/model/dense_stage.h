#pragma once

// The efficient and minimal memory modes: a dense block together with what follows it (a
// transition, or the final BN-ReLU-global-pool) runs as one autograd operation that owns its
// memory explicitly, in the spirit of the Caffe DenseBlock layer and of the paper's shared
// buffers. See docs/MEMORY.md for the budget this implements.

#include "densenet/model/dense_block.h"
#include "densenet/model/transition.h"

#include <c10/core/DeviceType.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

#include <optional>

namespace densenet::detail {

/// What the stage computes after its dense block.
enum class StageTail {
  kNone,        // returns the block output F, (N, C0 + L*k, H, W)
  kTransition,  // returns conv(avgpool(relu(norm(F)))), (N, C_out, H/2, W/2)
  kFinal,       // returns mean over H, W of relu(norm(F)), (N, C0 + L*k)
};

/// Runs `block` (whose options say efficient or minimal) and its tail on `input`
/// (N, C0, H, W). `transition` is required for kTransition, `final_norm` for kFinal.
/// Under no-grad (or when nothing requires grad) nothing is kept for backward.
torch::Tensor run_dense_stage(DenseBlockImpl& block, StageTail tail,
                              const std::shared_ptr<TransitionImpl>& transition,
                              const std::shared_ptr<torch::nn::BatchNorm2dImpl>& final_norm,
                              const torch::Tensor& input);

/// The dtype a stage on `device` computes in and keeps its buffers in (docs/MEMORY.md, "Mixed
/// precision"), from its input's dtype, its parameters' (nullopt: a stage without parameters)
/// and the dtype autocast runs that device's operations in (nullopt: autocast off). Under
/// autocast to bfloat16 or float16 on the CPU or CUDA, with float32 parameters: that dtype (F,
/// dF, the kept bottlenecks and the BN-ReLU outputs are 16-bit; statistics, their sums and the
/// parameters stay float32). Otherwise the parameters' dtype for a 16-bit input (converted
/// once), and the input's own for any other. A pure function, so that the CUDA cases are tested
/// on machines without a GPU (tests/model/test_mixed_precision.cpp).
torch::ScalarType stage_compute_dtype(c10::DeviceType device, torch::ScalarType input,
                                      std::optional<torch::ScalarType> parameters,
                                      std::optional<torch::ScalarType> amp);

}  // namespace densenet::detail

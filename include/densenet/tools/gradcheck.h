#pragma once

#include "densenet/model/options.h"

#include <torch/types.h>

#include <algorithm>
#include <string>
#include <vector>

namespace densenet {

/// The largest difference found in one group of tensors.
struct DifferenceSummary {
  std::string group;         // "output", "input gradient", "parameter gradients", "state dict"
  double max_abs = 0;        // max |mode - naive| over the group
  double max_rel = 0;        // max over tensors of max|mode - naive| / max|naive| (to scale)
  std::string worst_tensor;  // the tensor with the largest relative difference
  double tolerance = 0;
  /// float32 only: the same relative differences of the mode and of naive from a float64 run
  /// of the naive model (the truth both approximate). Negative when not measured.
  double mode_rel_to_float64 = -1;
  double naive_rel_to_float64 = -1;
  /// Gradients and the state after a step, float32 only: the largest difference one ReLU
  /// kink crossing can make (see passed()); 0 where it does not apply (outputs, float64).
  double kink_allowance = 0;

  /// Within tolerance of naive; or (float32 gradients) no further from the float64 result than
  /// max(kFloat32Slack x naive's own distance, kink_allowance). Float32 training of a deep
  /// DenseNet amplifies rounding through batch statistics, and any two float32 implementations
  /// place some near-zero pre-activations on different sides of a ReLU kink: a relative input
  /// perturbation of 1e-7 moves densenet-bc-100's float32 input gradient by ~1e-2 (measured),
  /// and one kink crossing moved a densenet161 eval-mode gradient by 9.9e-3 of its scale.
  /// Exactness is proven in float64 (1e-10, same run); the float32 check proves the float32
  /// path computes the same function, with outputs held to 1e-5.
  bool passed() const {
    if (max_rel <= tolerance) return true;
    return mode_rel_to_float64 >= 0 &&
           mode_rel_to_float64 <=
               std::max({tolerance, kFloat32Slack * naive_rel_to_float64, kink_allowance});
  }
  static constexpr double kFloat32Slack = 20.0;
  static constexpr double kFloat32KinkAllowance = 3e-2;
};

struct ModeComparison {
  std::string description;  // e.g. "efficient vs naive, train, float32"
  std::vector<DifferenceSummary> groups;
  bool passed() const;
};

struct ModeComparisonOptions {
  TORCH_ARG(int64_t, batch) = 4;
  /// Spatial size of the random input; 0 = the model's input_size.
  TORCH_ARG(int64_t, input_size) = 0;
  TORCH_ARG(torch::Dtype, dtype) = torch::kFloat32;
  TORCH_ARG(bool, train) = true;
  TORCH_ARG(uint64_t, seed) = 0;
  /// Where both models run. On CUDA the caller should turn TF32 off (see gradcheck_command):
  /// with it on, cuDNN rounds convolution inputs to 10-bit mantissas and float32 results
  /// differ by ~1e-3 between any two implementations.
  TORCH_ARG(torch::Device, device) = torch::kCPU;
};

/// Relative tolerance of a mode comparison for `dtype`: 1e-5 of a tensor's scale in float32,
/// 1e-10 in float64.
double mode_comparison_tolerance(torch::Dtype dtype);

/// Builds a naive model and a `mode` model with the same weights and non-trivial running
/// statistics (and in float32 also the naive model in float64), runs one step on each (forward with
/// the same dropout seed, loss = a fixed random weighting of the logits, backward, plain SGD
/// update) in train or eval mode, and compares the outputs, the input gradient, every parameter
/// gradient and the whole state dict after the step.
ModeComparison compare_memory_modes(const DenseNetOptions& model, MemoryMode mode,
                                    const ModeComparisonOptions& options);

/// Finite differences in double on a tiny network in `mode`: the analytic gradient of a scalar
/// loss with respect to the input and to a sample of parameters against central differences.
/// Returns the largest relative error (relative to the gradient's scale).
struct FiniteDifferenceResult {
  double max_rel_error = 0;
  std::string worst;    // which tensor
  int64_t checked = 0;  // number of scalar entries checked
  double tolerance = 0;
  bool passed() const { return max_rel_error <= tolerance; }
};
FiniteDifferenceResult finite_difference_check(const DenseNetOptions& model, MemoryMode mode,
                                               bool train, uint64_t seed = 0);

}  // namespace densenet

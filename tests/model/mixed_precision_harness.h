#pragma once

// One training step of a small DenseNet in each memory mode under autocast, compared with a
// float32 step within tolerances derived from the dtype's epsilon and the model's conditioning:
// the one check that test_mixed_precision.cpp runs on the CPU and test_mixed_precision_cuda.cpp
// runs on a GPU (densenet_cuda_tests, bench/gpu/device_check.sh).

#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"
#include "densenet/model/options.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace densenet::testing {

/// One training step's results: forward under autocast (or not), backward outside it.
struct StepResult {
  torch::Tensor logits;       // (N, classes), the autocast dtype
  torch::Tensor eval_logits;  // (N, classes): the same weights in eval mode, under no-grad
  torch::Tensor input_grad;   // (N, C, H, W) float32
  StateDict grads;            // parameter name -> gradient (float32)
  StateDict state;            // after the step: running statistics included
};

/// One step of `options` in `mode` on `device` from `weights` (CPU tensors), images (N, C, H, W)
/// and a fixed weighting of the logits (N, classes) as the loss; autocast to `amp` on `device`
/// around the forward (nullopt: float32).
StepResult train_step(DenseNetOptions options, MemoryMode mode, const StateDict& weights,
                      const torch::Tensor& images, const torch::Tensor& loss_weights,
                      std::optional<torch::ScalarType> amp, torch::Device device);

/// How far one step's results are from a reference step's. Outputs and running statistics: the
/// largest difference relative to each tensor's largest magnitude. Gradients: the relative L2
/// distance of all of them as one vector, the measure of a training step's direction; per
/// tensor it is meaningless here, since some gradients are zero up to rounding (a stem norm
/// whose scale the next batch norm cancels).
struct Differences {
  double logits = 0;      // max |a - e| / max |e|, of the training and of the eval forward
  double state = 0;       // the same, worst floating-point state tensor (running statistics)
  double grads = 0;       // |g - g_ref| / |g_ref| over every parameter gradient
  double input_grad = 0;  // the same for the input gradient
};

Differences differences(const StepResult& actual, const StepResult& expected);
std::ostream& operator<<(std::ostream& out, const Differences& d);

/// `actual` is within `tolerance` of a reference, measure by measure.
::testing::AssertionResult within(const std::string& what, const Differences& actual,
                                  const Differences& tolerance);

struct AmpCase {
  std::string name;
  DenseNetOptions options;
};

/// Three small models: BC, plain (no bottleneck, no compression), and the ImageNet stem.
std::vector<AmpCase> amp_cases();

/// The dtype's machine epsilon: 2^-7 for bfloat16, 2^-10 for float16.
double epsilon(torch::ScalarType dtype);

struct AmpModesCase {
  AmpCase model;
  torch::ScalarType dtype;
  std::string name() const;
};
void PrintTo(const AmpModesCase& c, std::ostream* out);

/// amp_cases() under bfloat16 and under float16.
std::vector<AmpModesCase> amp_modes_cases();

/// The check: under autocast on `device`, naive, efficient and minimal each train within the
/// tolerances of a float32 step (and within twice them of each other), return 16-bit logits
/// and float32 gradients and statistics, and really compute in the 16-bit dtype. Reports
/// failures through gtest's EXPECT_*.
void check_amp_modes_agree(const AmpModesCase& amp_case, torch::Device device);

}  // namespace densenet::testing

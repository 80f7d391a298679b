// Mixed precision (amp) in the three memory modes on the CPU: bfloat16 autocast trains in naive,
// efficient and minimal, the modes agree with each other and with float32, and the batch
// statistics of a dense block are formed in float32 or better whatever dtype its input has.
#include "densenet/io/state_dict.h"
#include "densenet/model/dense_block.h"
#include "densenet/model/densenet.h"
#include "densenet/train/amp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "support/tensor_compare.h"

namespace densenet {
namespace {

using train::AutocastGuard;

// One training step's results: forward under autocast (or not), backward outside it.
struct StepResult {
  torch::Tensor logits;      // (N, classes), the autocast dtype
  torch::Tensor input_grad;  // (N, C, H, W) float32
  StateDict grads;           // parameter name -> gradient (float32)
  StateDict state;           // after the step: running statistics included
};

StepResult train_step(DenseNetOptions options, MemoryMode mode, const StateDict& weights,
                      const torch::Tensor& images, const torch::Tensor& loss_weights,
                      std::optional<torch::ScalarType> amp) {
  options.memory(mode);
  DenseNet model(options);
  load_state_dict(*model, weights);
  model->train();
  const torch::Tensor input = images.clone().requires_grad_(true);
  StepResult result;
  {
    const AutocastGuard autocast(torch::kCPU, amp);
    result.logits = model->forward(input);
  }
  // A fixed random weighting of the logits: every logit gets a different gradient.
  (result.logits.to(torch::kFloat32) * loss_weights).sum().backward();
  result.input_grad = input.grad();
  for (const auto& item : model->named_parameters()) {
    result.grads.insert(item.key(), item.value().grad().clone());
  }
  for (const auto& item : state_dict(*model)) result.state.insert(item.key(), item.value().clone());
  return result;
}

// How far one step's results are from a reference step's. Outputs and running statistics: the
// largest difference relative to each tensor's largest magnitude (testing::tensors_close's
// measure). Gradients: the relative L2 distance of all of them as one vector, the measure of a
// training step's direction; per tensor it is meaningless here, since some gradients are zero
// up to rounding (a stem norm whose scale the next batch norm cancels).
struct Differences {
  double logits = 0;      // max |a - e| / max |e|
  double state = 0;       // the same, worst floating-point state tensor (running statistics)
  double grads = 0;       // |g - g_ref| / |g_ref| over every parameter gradient
  double input_grad = 0;  // the same for the input gradient
};

double max_relative(const torch::Tensor& actual, const torch::Tensor& expected) {
  const torch::Tensor a = actual.to(torch::kFloat64), e = expected.to(torch::kFloat64);
  const double scale = e.abs().max().item<double>();
  return (a - e).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

Differences differences(const StepResult& actual, const StepResult& expected) {
  Differences d;
  d.logits = max_relative(actual.logits, expected.logits);
  for (const auto& item : expected.state) {
    if (!item.value().is_floating_point()) continue;
    d.state = std::max(d.state, max_relative(*actual.state.find(item.key()), item.value()));
  }
  double diff2 = 0, ref2 = 0;
  for (const auto& item : expected.grads) {
    const torch::Tensor e = item.value().to(torch::kFloat64);
    diff2 += (actual.grads.find(item.key())->to(torch::kFloat64) - e).pow(2).sum().item<double>();
    ref2 += e.pow(2).sum().item<double>();
  }
  d.grads = std::sqrt(diff2 / ref2);
  const torch::Tensor e = expected.input_grad.to(torch::kFloat64);
  d.input_grad =
      (actual.input_grad.to(torch::kFloat64) - e).norm().item<double>() / e.norm().item<double>();
  return d;
}

std::ostream& operator<<(std::ostream& out, const Differences& d) {
  return out << "logits " << d.logits << ", running statistics " << d.state
             << ", parameter gradients (L2) " << d.grads << ", input gradient (L2) "
             << d.input_grad;
}

// `actual` is within `tolerance` of a reference, measure by measure.
::testing::AssertionResult within(const std::string& what, const Differences& actual,
                                  const Differences& tolerance) {
  if (actual.logits <= tolerance.logits && actual.state <= tolerance.state &&
      actual.grads <= tolerance.grads && actual.input_grad <= tolerance.input_grad) {
    return ::testing::AssertionSuccess() << what << ": " << actual;
  }
  return ::testing::AssertionFailure() << what << ": " << actual << "; allowed: " << tolerance;
}

struct AmpCase {
  std::string name;
  DenseNetOptions options;
};

std::vector<AmpCase> amp_cases() {
  return {
      {"bc", DenseNetOptions()
                 .growth_rate(6)
                 .block_config({3, 3})
                 .num_init_features(12)
                 .bn_size(4)
                 .compression(0.5)
                 .num_classes(5)
                 .input_size(16)},
      {"plain", DenseNetOptions()
                    .growth_rate(6)
                    .block_config({3, 3})
                    .num_init_features(12)
                    .bn_size(0)
                    .compression(1.0)
                    .num_classes(5)
                    .input_size(16)},
      {"imagenet_stem", DenseNetOptions()
                            .growth_rate(6)
                            .block_config({2, 2})
                            .num_init_features(12)
                            .bn_size(4)
                            .compression(0.5)
                            .num_classes(5)
                            .input_size(48)},
  };
}

void PrintTo(const AmpCase& c, std::ostream* out) {
  *out << c.name;
}

// Tolerances. A bfloat16 value carries 8 significant bits: rounding to it moves a value by up
// to 2^-9 = 0.2%. Logits (rounded to bfloat16 by the classifier, after a bfloat16 stem and, in
// naive, bfloat16 convolutions throughout): 2e-2 (measured worst 8.3e-3). Running statistics:
// 1e-2 (measured 3.4e-3). Gradients: a training step of a batch-normalised network is badly
// conditioned (test_memory_modes.cpp: a 1e-7 input perturbation moves densenet-bc-100's float32
// input gradient by 1e-2), so their tolerance is measured on the same model: float32 with only
// its input perturbed by bfloat16's rounding (2^-9 relative noise) moves the gradients by G
// (here 1.7-10% in L2); amp may move them by at most 3 G (measured up to 1.7 G, naive on plain
// layers). Efficient against minimal under amp: both run the blocks in float32 between the same
// bfloat16 stem and classifier, so they agree as in float32 (1e-5; measured 0 to 2.5e-7), the
// input gradient to 1e-3 (measured 3.6e-5: the stem's bfloat16 backward rounds their float32
// differences to whole bfloat16 steps).
constexpr double kLogitsTolerance = 2e-2;
constexpr double kStateTolerance = 1e-2;
constexpr double kConditioningFactor = 3;

class AmpModesTest : public ::testing::TestWithParam<AmpCase> {};

TEST_P(AmpModesTest, Bf16TrainingAgreesAcrossMemoryModes) {
  const AmpCase c = GetParam();
  torch::manual_seed(11);
  const StateDict weights = state_dict(*DenseNet(c.options));
  const int64_t size = c.options.input_size();
  const torch::Tensor images = torch::randn({6, 3, size, size});
  const torch::Tensor loss_weights = torch::randn({6, c.options.num_classes()});
  const torch::Tensor perturbed =
      images * (1 + std::ldexp(1.0, -9) * torch::randn_like(images));  // bf16-sized noise

  const StepResult float32 =
      train_step(c.options, MemoryMode::kNaive, weights, images, loss_weights, std::nullopt);
  const Differences conditioning = differences(
      train_step(c.options, MemoryMode::kNaive, weights, perturbed, loss_weights, std::nullopt),
      float32);
  Differences amp_tolerance;
  amp_tolerance.logits = kLogitsTolerance;
  amp_tolerance.state = kStateTolerance;
  amp_tolerance.grads = kConditioningFactor * conditioning.grads;
  amp_tolerance.input_grad = kConditioningFactor * conditioning.input_grad;

  std::vector<StepResult> amp;
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    amp.push_back(train_step(c.options, mode, weights, images, loss_weights, torch::kBFloat16));
    const StepResult& r = amp.back();
    const std::string name = memory_mode_name(mode);
    EXPECT_EQ(r.logits.scalar_type(), torch::kBFloat16) << name << ": the classifier ran in float";
    EXPECT_EQ(r.input_grad.scalar_type(), torch::kFloat32) << name;
    for (const auto& item : r.grads) {
      EXPECT_EQ(item.value().scalar_type(), torch::kFloat32) << name << " " << item.key();
    }
    EXPECT_TRUE(within(name + " bf16 vs float32", differences(r, float32), amp_tolerance));
  }
  // Two runs each within the tolerance of float32 are within twice it of each other.
  Differences twice = amp_tolerance;
  for (double* t : {&twice.logits, &twice.state, &twice.grads, &twice.input_grad}) *t *= 2;
  EXPECT_TRUE(within("naive vs efficient, bf16", differences(amp[0], amp[1]), twice));
  Differences float32_blocks;
  float32_blocks.logits = float32_blocks.state = float32_blocks.grads = 1e-5;
  float32_blocks.input_grad = 1e-3;
  EXPECT_TRUE(within("minimal vs efficient, bf16", differences(amp[2], amp[1]), float32_blocks));
  // Naive really computes in bfloat16 (so the tolerances above are not vacuous): its logits
  // are further from float32 than float32 rounding could put them.
  EXPECT_GT(differences(amp[0], float32).logits, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Families, AmpModesTest, ::testing::ValuesIn(amp_cases()),
                         [](const auto& info) { return info.param.name; });

// A dense block in efficient or minimal mode handed a bfloat16 input computes what it computes
// for the same values in float32, bit for bit: its batch statistics, and so the running
// statistics it updates, are formed from float32 values (in double on the CPU). Statistics
// formed in bfloat16 would be off by up to a quarter at these values (around 100, where
// bfloat16's spacing is 0.5). Naive (LibTorch's batch norm) is held to float32 rounding.
TEST(AmpStatistics, BlockStatisticsOfBf16InputAreFloat32) {
  for (MemoryMode mode : {MemoryMode::kEfficient, MemoryMode::kMinimal, MemoryMode::kNaive}) {
    for (int64_t bn_size : {0, 2}) {
      SCOPED_TRACE(memory_mode_name(mode) + (bn_size > 0 ? " bc" : " plain"));
      DenseBlockOptions options(3, 4, 3);
      options.bn_size(bn_size).memory(mode);
      torch::manual_seed(5);
      DenseBlock as_float(options), as_bf16(options);
      load_state_dict(*as_bf16, state_dict(*as_float));
      // (N, C0, H, W), values of bfloat16: the float32 run sees exactly what the bf16 run gets.
      const torch::Tensor bf16_input = (torch::randn({4, 4, 6, 6}) * 2 + 100).to(torch::kBFloat16);
      const torch::Tensor float_input = bf16_input.to(torch::kFloat32);
      const torch::Tensor expected = as_float->forward(float_input);
      torch::Tensor actual;
      {
        const AutocastGuard autocast(torch::kCPU, torch::kBFloat16);
        actual = as_bf16->forward(bf16_input);
      }
      const StateDict want = state_dict(*as_float), got = state_dict(*as_bf16);
      for (const auto& item : want) {
        if (item.key().find("running_") == std::string::npos) continue;
        if (mode == MemoryMode::kNaive) {
          // Only the first norm sees the same values: later ones read bfloat16 convolutions.
          if (item.key().find("denselayer1.norm1.") == std::string::npos) continue;
          EXPECT_TRUE(
              testing::tensors_close(item.key(), *got.find(item.key()), item.value(), 1e-5));
        } else {
          EXPECT_TRUE(testing::tensors_identical(item.key(), *got.find(item.key()), item.value()));
        }
      }
      if (mode != MemoryMode::kNaive) {
        EXPECT_TRUE(testing::tensors_identical("block output", actual, expected));
      }
    }
  }
}

}  // namespace
}  // namespace densenet

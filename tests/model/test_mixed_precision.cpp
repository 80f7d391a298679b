// Mixed precision (amp) in the three memory modes on the CPU: bfloat16 autocast (and float16 where
// this LibTorch's CPU autocast takes it) trains in naive, efficient and minimal, the modes agree
// with each other and with float32 within what the dtype's rounding and each model's
// conditioning allow, the efficient and minimal stages really compute in the 16-bit dtype, and
// the batch statistics of a dense block are formed in float32 or better whatever dtype its data
// has.
#include "densenet/io/state_dict.h"
#include "densenet/model/dense_block.h"
#include "densenet/model/densenet.h"
#include "densenet/model/memory_plan.h"
#include "densenet/model/presets.h"
#include "densenet/train/amp.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "support/tensor_compare.h"

namespace densenet {
namespace {

using train::AutocastGuard;

// One training step's results: forward under autocast (or not), backward outside it.
struct StepResult {
  torch::Tensor logits;       // (N, classes), the autocast dtype
  torch::Tensor eval_logits;  // (N, classes): the same weights in eval mode, under no-grad
  torch::Tensor input_grad;   // (N, C, H, W) float32
  StateDict grads;            // parameter name -> gradient (float32)
  StateDict state;            // after the step: running statistics included
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
  model->eval();
  {
    const torch::NoGradGuard no_grad;
    const AutocastGuard autocast(torch::kCPU, amp);
    result.eval_logits = model->forward(images);
  }
  return result;
}

// How far one step's results are from a reference step's. Outputs and running statistics: the
// largest difference relative to each tensor's largest magnitude (testing::tensors_close's
// measure). Gradients: the relative L2 distance of all of them as one vector, the measure of a
// training step's direction; per tensor it is meaningless here, since some gradients are zero
// up to rounding (a stem norm whose scale the next batch norm cancels).
struct Differences {
  double logits = 0;      // max |a - e| / max |e|, of the training and of the eval forward
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
  d.logits = std::max(max_relative(actual.logits, expected.logits),
                      max_relative(actual.eval_logits, expected.eval_logits));
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

// Tolerances, from the dtype's machine epsilon eps (the spacing of its numbers at 1: 2^-7 for
// bfloat16, 8 significant bits; 2^-10 for float16, 11). Rounding to the dtype moves a value by
// up to eps/2, by eps/(2 sqrt 3) ~ eps/4 on average. Logits (rounded to the dtype by the
// classifier, after a 16-bit stem and 16-bit convolutions throughout): 2.5 eps (bfloat16 2e-2;
// measured worst 8.3e-3 with float32 stages). Running statistics: 1.25 eps (bfloat16 1e-2,
// measured 3.4e-3). Gradients: a training step of a batch-normalised network is badly
// conditioned (test_memory_modes.cpp: a 1e-7 input perturbation moves densenet-bc-100's float32
// input gradient by 1e-2), so their tolerance is measured on each model: float32 with only its
// input perturbed by the dtype's rounding (eps/4 relative noise) moves the gradients by G (for
// bfloat16 1.7-10% in L2); amp may move them by at most 3 G.
constexpr double kLogitsEps = 2.5;
constexpr double kStateEps = 1.25;
constexpr double kConditioningFactor = 3;

double epsilon(torch::ScalarType dtype) {
  return dtype == torch::kBFloat16
             ? static_cast<double>(std::numeric_limits<c10::BFloat16>::epsilon())
             : static_cast<double>(std::numeric_limits<c10::Half>::epsilon());
}

struct AmpModesCase {
  AmpCase model;
  torch::ScalarType dtype;
  std::string name() const { return model.name + (dtype == torch::kBFloat16 ? "_bf16" : "_fp16"); }
};

void PrintTo(const AmpModesCase& c, std::ostream* out) {
  *out << c.name();
}

std::vector<AmpModesCase> amp_modes_cases() {
  std::vector<AmpModesCase> all;
  for (torch::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
    for (const AmpCase& model : amp_cases()) all.push_back({model, dtype});
  }
  return all;
}

class AmpModesTest : public ::testing::TestWithParam<AmpModesCase> {};

TEST_P(AmpModesTest, TrainingAgreesAcrossMemoryModes) {
  const AmpCase c = GetParam().model;
  const torch::ScalarType dtype = GetParam().dtype;
  if (!train::autocast_supported(torch::kCPU, dtype)) {
    GTEST_SKIP() << "this LibTorch's CPU autocast refuses " << dtype;
  }
  const double eps = epsilon(dtype);
  torch::manual_seed(11);
  const StateDict weights = state_dict(*DenseNet(c.options));
  const int64_t size = c.options.input_size();
  const torch::Tensor images = torch::randn({6, 3, size, size});
  const torch::Tensor loss_weights = torch::randn({6, c.options.num_classes()});
  const torch::Tensor perturbed =
      images * (1 + eps / 4 * torch::randn_like(images));  // noise of one rounding

  const StepResult float32 =
      train_step(c.options, MemoryMode::kNaive, weights, images, loss_weights, std::nullopt);
  const Differences conditioning = differences(
      train_step(c.options, MemoryMode::kNaive, weights, perturbed, loss_weights, std::nullopt),
      float32);
  Differences amp_tolerance;
  amp_tolerance.logits = kLogitsEps * eps;
  amp_tolerance.state = kStateEps * eps;
  amp_tolerance.grads = kConditioningFactor * conditioning.grads;
  amp_tolerance.input_grad = kConditioningFactor * conditioning.input_grad;

  std::vector<StepResult> amp;
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    amp.push_back(train_step(c.options, mode, weights, images, loss_weights, dtype));
    const StepResult& r = amp.back();
    const std::string name = memory_mode_name(mode);
    EXPECT_EQ(r.logits.scalar_type(), dtype) << name << ": the classifier ran in float";
    EXPECT_EQ(r.input_grad.scalar_type(), torch::kFloat32) << name;
    for (const auto& item : r.grads) {
      EXPECT_EQ(item.value().scalar_type(), torch::kFloat32) << name << " " << item.key();
    }
    for (const auto& item : r.state) {
      if (item.value().is_floating_point()) {
        EXPECT_EQ(item.value().scalar_type(), torch::kFloat32) << name << " " << item.key();
      }
    }
    EXPECT_TRUE(within(name + " amp vs float32", differences(r, float32), amp_tolerance));
    // Every mode really computes in the 16-bit dtype (so the tolerances above are not vacuous):
    // its logits are further from float32 than float32 rounding could put them.
    EXPECT_GT(differences(r, float32).logits, 1e-4) << name;
  }
  // Two runs each within the tolerance of float32 are within twice it of each other.
  Differences twice = amp_tolerance;
  for (double* t : {&twice.logits, &twice.state, &twice.grads, &twice.input_grad}) *t *= 2;
  EXPECT_TRUE(within("naive vs efficient, amp", differences(amp[0], amp[1]), twice));
  EXPECT_TRUE(within("minimal vs efficient, amp", differences(amp[2], amp[1]), twice));
}

INSTANTIATE_TEST_SUITE_P(Families, AmpModesTest, ::testing::ValuesIn(amp_modes_cases()),
                         [](const auto& info) { return info.param.name(); });

// Under bfloat16 autocast a dense block in efficient or minimal mode keeps its buffer (and so its
// output) in bfloat16, and forms its batch statistics from those 16-bit values in double:
// statistics in bfloat16 would be off by up to a quarter at these values (around 100, where
// bfloat16's spacing is 0.5). Every layer's norm1 normalises the block's input channels, whose
// values are the input's own in a float32 run of the same bfloat16 values: their running
// statistics must be the float32 run's up to float32 rounding. (Later channels differ: they are
// bfloat16 convolutions' outputs.) Naive (LibTorch's batch norm) is held to the same for its
// first layer.
TEST(AmpStatistics, BlockStatisticsOfBf16DataAreFloat32) {
  for (MemoryMode mode : {MemoryMode::kEfficient, MemoryMode::kMinimal, MemoryMode::kNaive}) {
    for (int64_t bn_size : {0, 2}) {
      SCOPED_TRACE(memory_mode_name(mode) + (bn_size > 0 ? " bc" : " plain"));
      const int64_t c0 = 4, layers = 3;
      DenseBlockOptions options(layers, c0, 3);
      options.bn_size(bn_size).memory(mode);
      torch::manual_seed(5);
      DenseBlock as_float(options), as_bf16(options);
      load_state_dict(*as_bf16, state_dict(*as_float));
      // (N, C0, H, W), values of bfloat16: the float32 run sees exactly what the bf16 run gets.
      const torch::Tensor bf16_input = (torch::randn({4, c0, 6, 6}) * 2 + 100).to(torch::kBFloat16);
      const torch::Tensor float_input = bf16_input.to(torch::kFloat32);
      as_float->forward(float_input);
      torch::Tensor actual;
      {
        const AutocastGuard autocast(torch::kCPU, torch::kBFloat16);
        actual = as_bf16->forward(bf16_input);
      }
      EXPECT_EQ(actual.scalar_type(), torch::kBFloat16) << "the block's buffer is 16-bit";
      EXPECT_TRUE(testing::tensors_identical("input channels of the output",
                                             actual.narrow(1, 0, c0), bf16_input));
      const StateDict want = state_dict(*as_float), got = state_dict(*as_bf16);
      for (int64_t l = 1; l <= (mode == MemoryMode::kNaive ? 1 : layers); ++l) {
        for (const std::string stat : {"running_mean", "running_var"}) {
          const std::string key = "denselayer" + std::to_string(l) + ".norm1." + stat;
          // float32 rounding: the variance is a difference of two rounded sums, so a few ulps
          // (1e-6); naive's LibTorch norm accumulates in float32, not double (1e-5).
          const double tolerance = mode == MemoryMode::kNaive ? 1e-5 : 1e-6;
          EXPECT_TRUE(testing::tensors_close(key, got.find(key)->narrow(0, 0, c0),
                                             want.find(key)->narrow(0, 0, c0), tolerance));
        }
      }
    }
  }
}

// The memory plan under amp (densenet info --amp, memory: auto, bench's refusal of a batch):
// activations counted at 2 bytes where the step keeps them 16-bit (every mode on the CPU, naive on
// CUDA, where the stages stay float32 for now), at 4 elsewhere; parameters and input float32.
TEST(AmpMemoryPlan, CountsTwoBytesWhereActivationsAre16Bit) {
  const ArchitecturePlan plan = plan_architecture(preset_options("densenet-bc-100"));
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    SCOPED_TRACE(memory_mode_name(mode));
    const StepMemory float32 = plan_step_memory(plan, mode, 0, 1);
    for (torch::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
      const StepMemory cpu = plan_step_memory(plan, mode, 0, 1, c10::DeviceType::CPU, dtype);
      const StepMemory cuda = plan_step_memory(plan, mode, 0, 1, c10::DeviceType::CUDA, dtype);
      EXPECT_EQ(2 * cpu.activations_per_sample, float32.activations_per_sample);
      EXPECT_EQ((mode == MemoryMode::kNaive ? 2 : 1) * cuda.activations_per_sample,
                float32.activations_per_sample);
      EXPECT_EQ(cpu.fixed, float32.fixed);
      EXPECT_EQ(cpu.input_per_sample, float32.input_per_sample);
      EXPECT_EQ(predicted_step_bytes(plan, mode, 64, 1, 1, c10::DeviceType::CPU, dtype),
                plan_step_memory(plan, mode, 1, 2, c10::DeviceType::CPU, dtype).bytes(64));
    }
  }
}

}  // namespace
}  // namespace densenet

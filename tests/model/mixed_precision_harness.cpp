#include "model/mixed_precision_harness.h"

#include "densenet/model/memory_plan.h"
#include "densenet/train/amp.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <limits>

namespace densenet::testing {

using train::AutocastGuard;

StepResult train_step(DenseNetOptions options, MemoryMode mode, const StateDict& weights,
                      const torch::Tensor& images, const torch::Tensor& loss_weights,
                      std::optional<torch::ScalarType> amp, torch::Device device) {
  options.memory(mode);
  DenseNet model(options);
  load_state_dict(*model, weights);
  model->to(device);
  model->train();
  const torch::Tensor input = images.to(device).clone().requires_grad_(true);
  StepResult result;
  {
    const AutocastGuard autocast(device.type(), amp);
    result.logits = model->forward(input);
  }
  // A fixed random weighting of the logits: every logit gets a different gradient.
  (result.logits.to(torch::kFloat32) * loss_weights.to(device)).sum().backward();
  result.input_grad = input.grad();
  for (const auto& item : model->named_parameters()) {
    result.grads.insert(item.key(), item.value().grad().clone());
  }
  for (const auto& item : state_dict(*model)) result.state.insert(item.key(), item.value().clone());
  model->eval();
  {
    const torch::NoGradGuard no_grad;
    const AutocastGuard autocast(device.type(), amp);
    result.eval_logits = model->forward(images.to(device));
  }
  return result;
}

namespace {

double max_relative(const torch::Tensor& actual, const torch::Tensor& expected) {
  const torch::Tensor a = actual.to(torch::kFloat64), e = expected.to(torch::kFloat64);
  const double scale = e.abs().max().item<double>();
  return (a - e).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

}  // namespace

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

::testing::AssertionResult within(const std::string& what, const Differences& actual,
                                  const Differences& tolerance) {
  if (actual.logits <= tolerance.logits && actual.state <= tolerance.state &&
      actual.grads <= tolerance.grads && actual.input_grad <= tolerance.input_grad) {
    return ::testing::AssertionSuccess() << what << ": " << actual;
  }
  return ::testing::AssertionFailure() << what << ": " << actual << "; allowed: " << tolerance;
}

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

std::string AmpModesCase::name() const {
  return model.name + (dtype == torch::kBFloat16 ? "_bf16" : "_fp16");
}

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

void check_amp_modes_agree(const AmpModesCase& amp_case, torch::Device device) {
  const AmpCase& c = amp_case.model;
  const torch::ScalarType dtype = amp_case.dtype;
  const double eps = epsilon(dtype);
  torch::manual_seed(11);
  const StateDict weights = state_dict(*DenseNet(c.options));
  const int64_t size = c.options.input_size();
  const torch::Tensor images = torch::randn({6, 3, size, size});
  const torch::Tensor loss_weights = torch::randn({6, c.options.num_classes()});
  const torch::Tensor perturbed =
      images * (1 + eps / 4 * torch::randn_like(images));  // noise of one rounding

  const StepResult float32 = train_step(c.options, MemoryMode::kNaive, weights, images,
                                        loss_weights, std::nullopt, device);
  const Differences conditioning =
      differences(train_step(c.options, MemoryMode::kNaive, weights, perturbed, loss_weights,
                             std::nullopt, device),
                  float32);
  Differences amp_tolerance;
  amp_tolerance.logits = kLogitsEps * eps;
  amp_tolerance.state = kStateEps * eps;
  amp_tolerance.grads = kConditioningFactor * conditioning.grads;
  amp_tolerance.input_grad = kConditioningFactor * conditioning.input_grad;

  std::vector<StepResult> amp;
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    amp.push_back(train_step(c.options, mode, weights, images, loss_weights, dtype, device));
    const StepResult& r = amp.back();
    const std::string name = memory_mode_name(mode) + " on " + device.str();
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

}  // namespace densenet::testing

#include "densenet/tools/gradcheck.h"

#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"

#include <c10/util/Exception.h>
#include <torch/nn/functional/loss.h>

#include <sstream>

namespace densenet {

namespace {

/// Non-trivial BN affine parameters and running statistics, so that a mode that ignores or
/// swaps statistics cannot pass. The running statistics come from real training-mode passes
/// over random data (arbitrary random values would make eval-mode activations explode).
void randomize_norms(DenseNetImpl& model, torch::Generator& generator, int64_t input_size) {
  torch::NoGradGuard no_grad;
  for (auto& module : model.modules(/*include_self=*/false)) {
    if (auto* norm = module->as<torch::nn::BatchNorm2d>()) {
      const int64_t c = norm->options.num_features();
      // Drawn on the CPU (the generator's device) in the model's dtype, then copied over.
      const auto options = torch::TensorOptions().dtype(norm->weight.scalar_type());
      norm->weight.copy_(torch::rand({c}, generator, options) + 0.5);
      norm->bias.copy_(torch::randn({c}, generator, options) * 0.1);
    }
  }
  const bool was_training = model.is_training();
  model.train();
  const auto options = torch::TensorOptions().dtype(model.classifier->weight.scalar_type());
  for (int pass = 0; pass < 3; ++pass) {
    model.forward((torch::randn({4, model.options.in_channels(), input_size, input_size}, generator,
                                options) *
                       1.5 +
                   0.2)
                      .to(model.classifier->weight.device()));
  }
  model.train(was_training);
}

/// max|a - b| and max|a - b| / max|b| of one tensor pair.
std::pair<double, double> difference(const std::string& name, const torch::Tensor& actual,
                                     const torch::Tensor& expected) {
  TORCH_INTERNAL_ASSERT(actual.defined() && expected.defined(), name, " undefined");
  TORCH_INTERNAL_ASSERT(actual.sizes() == expected.sizes(), name, ": ", actual.sizes(), " vs ",
                        expected.sizes());
  const torch::Tensor a = actual.detach().to(torch::kCPU, torch::kDouble);
  const torch::Tensor e = expected.detach().to(torch::kCPU, torch::kDouble);
  if (a.numel() == 0) return {0.0, 0.0};
  const double diff = (a - e).abs().max().item<double>();
  const double scale = e.abs().max().item<double>();
  return {diff, scale > 0 ? diff / scale : diff};
}

struct GroupAccumulator {
  DifferenceSummary summary;
  /// `reference`: the float64 naive result, or undefined.
  void add(const std::string& name, const torch::Tensor& mode, const torch::Tensor& naive,
           const torch::Tensor& reference) {
    const auto [diff, rel] = difference(name, mode, naive);
    summary.max_abs = std::max(summary.max_abs, diff);
    if (rel > summary.max_rel || summary.worst_tensor.empty()) {
      summary.max_rel = std::max(summary.max_rel, rel);
      summary.worst_tensor = name;
    }
    if (reference.defined()) {
      summary.mode_rel_to_float64 =
          std::max(summary.mode_rel_to_float64, difference(name, mode, reference).second);
      summary.naive_rel_to_float64 =
          std::max(summary.naive_rel_to_float64, difference(name, naive, reference).second);
    }
  }
};

struct StepResult {
  torch::Tensor output;
  torch::Tensor input_grad;
  StateDict param_grads;
  StateDict state_after;
};

StepResult run_step(DenseNet& model, const torch::Tensor& input, const torch::Tensor& loss_weights,
                    bool train, uint64_t seed) {
  model->train(train);
  torch::Tensor x = input.clone().requires_grad_(true);
  torch::manual_seed(seed);  // the same dropout masks in both models
  torch::Tensor output = model->forward(x);
  (output * loss_weights).sum().backward();
  StepResult result;
  result.output = output.detach();
  result.input_grad = x.grad();
  for (const auto& param : model->named_parameters()) {
    result.param_grads.insert(param.key(), param.value().grad().clone());
  }
  {
    torch::NoGradGuard no_grad;
    constexpr double kLearningRate = 0.1;
    for (auto& param : model->parameters()) param.sub_(param.grad(), kLearningRate);
  }
  for (const auto& item : state_dict(*model))
    result.state_after.insert(item.key(), item.value().clone());
  return result;
}

}  // namespace

bool ModeComparison::passed() const {
  for (const auto& group : groups) {
    if (!group.passed()) return false;
  }
  return true;
}

double mode_comparison_tolerance(torch::Dtype dtype) {
  return dtype == torch::kFloat64 ? 1e-10 : 1e-5;
}

ModeComparison compare_memory_modes(const DenseNetOptions& model_options, MemoryMode mode,
                                    const ModeComparisonOptions& options) {
  torch::manual_seed(options.seed());
  auto generator = torch::make_generator<at::CPUGeneratorImpl>(options.seed() + 1);
  DenseNetOptions naive_options = model_options;
  naive_options.memory(MemoryMode::kNaive);
  DenseNet naive(naive_options);
  naive->to(options.device(), options.dtype());
  const int64_t size = options.input_size() > 0 ? options.input_size() : model_options.input_size();
  randomize_norms(*naive, generator, size);
  DenseNetOptions mode_options = model_options;
  mode_options.memory(mode);
  DenseNet other(mode_options);
  other->to(options.device(), options.dtype());
  load_state_dict(*other, state_dict(*naive));
  StateDict initial_state;
  for (const auto& item : state_dict(*naive))
    initial_state.insert(item.key(), item.value().clone());

  const auto tensor_options = torch::TensorOptions().dtype(options.dtype());
  const torch::Tensor input =
      torch::randn({options.batch(), model_options.in_channels(), size, size}, generator,
                   tensor_options)
          .to(options.device());
  const torch::Tensor loss_weights =
      torch::randn({options.batch(), model_options.num_classes()}, generator, tensor_options)
          .to(options.device());

  const StepResult expected = run_step(naive, input, loss_weights, options.train(), options.seed());
  const StepResult actual = run_step(other, input, loss_weights, options.train(), options.seed());
  StepResult reference;
  if (options.dtype() != torch::kFloat64) {
    DenseNet naive64(naive_options);
    naive64->to(options.device(), torch::kFloat64);
    load_state_dict(*naive64, initial_state);
    reference = run_step(naive64, input.to(torch::kFloat64), loss_weights.to(torch::kFloat64),
                         options.train(), options.seed());
  }
  auto reference_of = [&](const StateDict& dict, const std::string& key) {
    return reference.output.defined() ? dict[key] : torch::Tensor();
  };

  const double tolerance = mode_comparison_tolerance(options.dtype());
  GroupAccumulator output, input_grad, param_grads, state;
  output.summary.group = "output";
  input_grad.summary.group = "input gradient";
  param_grads.summary.group = "parameter gradients";
  state.summary.group = "state dict after step";
  output.add("output", actual.output, expected.output, reference.output);
  input_grad.add("input.grad", actual.input_grad, expected.input_grad, reference.input_grad);
  for (const auto& item : expected.param_grads) {
    param_grads.add(item.key() + ".grad", actual.param_grads[item.key()], item.value(),
                    reference_of(reference.param_grads, item.key()));
  }
  for (const auto& item : expected.state_after) {
    state.add(item.key(), actual.state_after[item.key()], item.value(),
              reference_of(reference.state_after, item.key()));
  }
  ModeComparison comparison;
  std::ostringstream description;
  description << memory_mode_name(mode) << " vs naive, " << (options.train() ? "train" : "eval")
              << ", " << options.dtype() << ", batch " << options.batch() << ", " << size << "x"
              << size;
  if (!options.device().is_cpu()) description << ", " << options.device();
  comparison.description = description.str();
  for (GroupAccumulator* group : {&output, &input_grad, &param_grads, &state}) {
    group->summary.tolerance = tolerance;
    if (group != &output && options.dtype() != torch::kFloat64) {
      group->summary.kink_allowance = DifferenceSummary::kFloat32KinkAllowance;
    }
    comparison.groups.push_back(group->summary);
  }
  return comparison;
}

FiniteDifferenceResult finite_difference_check(const DenseNetOptions& model_options,
                                               MemoryMode mode, bool train, uint64_t seed) {
  torch::manual_seed(seed);
  auto generator = torch::make_generator<at::CPUGeneratorImpl>(seed + 1);
  DenseNetOptions options = model_options;
  options.memory(mode);
  DenseNet model(options);
  model->to(torch::kFloat64);
  randomize_norms(*model, generator, options.input_size());
  model->train(train);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const int64_t size = options.input_size();
  torch::Tensor input = torch::randn({3, options.in_channels(), size, size}, generator, f64);
  const torch::Tensor loss_weights = torch::randn({3, options.num_classes()}, generator, f64);

  // The loss as a function of everything; reseeding keeps dropout masks fixed, and running
  // statistics do not enter a training-mode forward.
  auto loss = [&](const torch::Tensor& x) {
    torch::manual_seed(seed);
    return (model->forward(x) * loss_weights).sum();
  };
  torch::Tensor x = input.clone().requires_grad_(true);
  loss(x).backward();

  FiniteDifferenceResult result;
  constexpr double kStep = 1e-6;
  // Central differences in double are accurate to ~1e-9 of the gradient away from ReLU kinks.
  result.tolerance = 1e-6;
  auto check = [&](const std::string& name, torch::Tensor target, const torch::Tensor& analytic,
                   int64_t samples) {
    const double scale = analytic.abs().max().item<double>();
    torch::Tensor flat = target.view({-1});
    const torch::Tensor picks = torch::randint(flat.numel(), {samples}, generator, torch::kLong);
    for (int64_t s = 0; s < samples; ++s) {
      const int64_t i = picks[s].item<int64_t>();
      double numeric = 0;
      {
        torch::NoGradGuard no_grad;
        const double original = flat[i].item<double>();
        flat[i].fill_(original + kStep);
        const double plus = loss(input).item<double>();
        flat[i].fill_(original - kStep);
        const double minus = loss(input).item<double>();
        flat[i].fill_(original);
        numeric = (plus - minus) / (2 * kStep);
      }
      const double error =
          std::abs(numeric - analytic.view({-1})[i].item<double>()) / std::max(scale, 1e-12);
      ++result.checked;
      if (error > result.max_rel_error || result.worst.empty()) {
        result.max_rel_error = std::max(result.max_rel_error, error);
        result.worst = name;
      }
    }
  };
  check("input", input, x.grad(), 16);
  for (auto& param : model->named_parameters()) {
    check(param.key(), param.value().data(), param.value().grad(), 2);
  }
  return result;
}

}  // namespace densenet

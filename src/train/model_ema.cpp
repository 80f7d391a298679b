#include "densenet/train/model_ema.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <c10/util/Exception.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <mutex>

namespace densenet::train {
namespace {

// Restores the default CPU generator when it goes out of scope: building the copy initialises
// its weights randomly (DenseNetImpl::reset) before they are overwritten, and those draws must
// not shift the training run's dropout and initialisation.
class KeepCpuRng {
 public:
  KeepCpuRng() : state_(get()) {}
  ~KeepCpuRng() {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state_);
  }
  KeepCpuRng(const KeepCpuRng&) = delete;
  KeepCpuRng& operator=(const KeepCpuRng&) = delete;

 private:
  static torch::Tensor get() {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    return generator.get_state();
  }
  torch::Tensor state_;
};

// The ema's and the model's entries, paired in state-dict order; throws naming the first pair
// that differs in name, shape or dtype.
std::vector<std::pair<torch::Tensor, torch::Tensor>> paired(const StateDict& ema,
                                                            const StateDict& model) {
  TORCH_CHECK(ema.size() == model.size(), "model EMA: the model has ", model.size(),
              " state-dict entries, the EMA ", ema.size());
  std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs;
  auto theirs = model.begin();
  for (const auto& mine : ema) {
    TORCH_CHECK(mine.key() == theirs->key() && mine.value().sizes() == theirs->value().sizes() &&
                    mine.value().scalar_type() == theirs->value().scalar_type(),
                "model EMA: entry ", mine.key(), " ", mine.value().scalar_type(),
                mine.value().sizes(), " does not match the model's ", theirs->key(), " ",
                theirs->value().scalar_type(), theirs->value().sizes());
    pairs.emplace_back(mine.value(), theirs->value());
    ++theirs;
  }
  return pairs;
}

}  // namespace

double model_ema_decay(const ModelEmaOptions& options, int64_t step) {
  const int64_t t = std::max<int64_t>(0, step - options.update_after_step - 1);
  if (t <= 0) return 0.0;
  if (!options.use_warmup) return options.decay;
  const double warm =
      1.0 - std::pow(1.0 + static_cast<double>(t) / options.warmup_gamma, -options.warmup_power);
  return std::max(std::min(warm, options.decay), options.min_decay);
}

ModelEma::ModelEma(const DenseNet& model, ModelEmaOptions options) : options_(options) {
  TORCH_CHECK(options_.decay >= 0 && options_.decay <= 1,
              "model EMA: decay must be in [0, 1], got ", options_.decay);
  TORCH_CHECK(options_.warmup_gamma > 0, "model EMA: warmup_gamma must be > 0, got ",
              options_.warmup_gamma);
  {
    const KeepCpuRng keep;
    module_ = DenseNet(model->options);
  }
  const auto parameters = model->parameters();
  if (!parameters.empty()) module_->to(parameters.front().device());
  if (model->memory_format() != at::MemoryFormat::Contiguous) {
    module_->set_memory_format(model->memory_format());
  }
  for (auto& parameter : module_->parameters()) parameter.requires_grad_(false);
  module_->eval();
  set(*model);
}

void ModelEma::update(const torch::nn::Module& model, int64_t step) {
  torch::NoGradGuard no_grad;
  const double decay = model_ema_decay(options_, step);
  for (auto& [ema, current] : paired(densenet::state_dict(*module_), densenet::state_dict(model))) {
    if (ema.is_floating_point()) {
      // ModelEmaV3.apply_update_: lerp with weight 1 - decay, i.e. ema + (1 - decay)(model - ema).
      ema.lerp_(current, 1.0 - decay);
    } else {
      ema.copy_(current);
    }
  }
}

void ModelEma::set(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& [ema, current] : paired(densenet::state_dict(*module_), densenet::state_dict(model))) {
    ema.copy_(current);
  }
}

StateDict ModelEma::state_dict() const {
  return densenet::state_dict(*module_);
}

void ModelEma::load_state_dict(const StateDict& state, const std::string& source) {
  try {
    densenet::load_state_dict(*module_, state, /*strict=*/true);
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, "the model EMA in '", source,
                "' does not fit this model: ", error.what_without_backtrace());
  }
}

pth::Value ema_weights_checkpoint(const pth::Value& training_checkpoint) {
  const pth::Value* ema = training_checkpoint.find("state_dict_ema");
  TORCH_CHECK(ema != nullptr, "the checkpoint holds no model EMA (state_dict_ema)");
  pth::Value weights = pth::Value::dict();
  weights.set_item(pth::Value::string("model"), *ema);
  for (const char* key : {"config", "arch", "classes", "epoch", "num_parameters", "best_ema_top1",
                          "best_ema_epoch"}) {
    if (const pth::Value* value = training_checkpoint.find(key)) {
      weights.set_item(pth::Value::string(key), *value);
    }
  }
  return weights;
}

}  // namespace densenet::train

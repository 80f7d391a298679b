#include "densenet/train/optimizer.h"

#include <c10/util/Exception.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <sstream>
#include <type_traits>

namespace densenet::train {
namespace {

// LibTorch keys its per-parameter state by the TensorImpl's address: as a string in 1.x
// (c10::guts::to_string), as the pointer itself in later versions. Derive the key from the map's
// own key type so both compile.
template <typename Map>
typename std::decay_t<Map>::key_type state_key(const torch::Tensor& parameter) {
  using Key = typename std::decay_t<Map>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream out;
    out << parameter.unsafeGetTensorImpl();
    return out.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

// timm.optim.param_groups_weight_decay: 1-D tensors (batch-norm weights and biases) and biases.
bool excluded_from_decay(const std::string& name, const torch::Tensor& parameter) {
  const std::string suffix = ".bias";
  return parameter.dim() <= 1 ||
         (name.size() >= suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
}

pth::Value key(const char* text) {
  return pth::Value::string(text);
}

const pth::Value& item(const pth::Value& dict, const std::string& name, const std::string& where) {
  const pth::Value* value = dict.find(name);
  TORCH_CHECK(value != nullptr, "optimizer state: ", where, " has no '", name, "'");
  return *value;
}

void copy_checked(torch::Tensor& destination, const torch::Tensor& source, size_t index,
                  const char* name) {
  TORCH_CHECK(destination.sizes() == source.sizes(), "optimizer state: parameter ", index, "'s ",
              name, " has shape ", source.sizes(), ", the model's parameter ", destination.sizes());
  destination.copy_(source);
}

}  // namespace

pth::Value float_value(double value) {
  return pth::Value::tensor(torch::tensor(value, torch::kFloat64));
}

double float_of(const pth::Value& value) {
  if (value.is(pth::Value::Kind::Tensor)) {
    TORCH_CHECK(value.as_tensor().numel() == 1, "expected a number, got a tensor of shape ",
                value.as_tensor().sizes());
    return value.as_tensor().item<double>();
  }
  return value.as_float();
}

Optimizer::Optimizer(torch::nn::Module& model, const OptimizerOptions& options)
    : options_(options) {
  TORCH_CHECK(options.name == "sgd" || options.name == "adamw", "unknown optimizer '", options.name,
              "': use sgd or adamw");
  std::vector<torch::Tensor> decayed, not_decayed;
  for (const auto& named : model.named_parameters()) {
    const bool exclude =
        options.no_weight_decay_on_norm && excluded_from_decay(named.key(), named.value());
    (exclude ? not_decayed : decayed).push_back(named.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  const auto add_group = [&](std::vector<torch::Tensor> group, double weight_decay) {
    if (group.empty()) return;
    parameters_.insert(parameters_.end(), group.begin(), group.end());
    group_sizes_.push_back(group.size());
    std::unique_ptr<torch::optim::OptimizerOptions> group_options;
    if (options.name == "sgd") {
      group_options =
          std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(options.lr)
                                                         .momentum(options.momentum)
                                                         .nesterov(options.nesterov)
                                                         .weight_decay(weight_decay));
    } else {
      group_options =
          std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(options.lr)
                                                           .betas({options.momentum, 0.999})
                                                           .weight_decay(weight_decay));
    }
    groups.emplace_back(std::move(group), std::move(group_options));
  };
  add_group(decayed, options.weight_decay);
  add_group(not_decayed, 0.0);
  TORCH_CHECK(!groups.empty(), "the model has no parameters to optimise");
  if (options.name == "sgd") {
    optimizer_ =
        std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(options.lr)
                                                        .momentum(options.momentum)
                                                        .nesterov(options.nesterov)
                                                        .weight_decay(options.weight_decay));
  } else {
    optimizer_ =
        std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(options.lr)
                                                          .betas({options.momentum, 0.999})
                                                          .weight_decay(options.weight_decay));
  }
}

void Optimizer::set_lr(double lr) {
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
}

void Optimizer::zero_grad() {
  // Gradients are zeroed in place rather than released so that their memory is reused step
  // after step (torch.optim's set_to_none=False behaviour).
  for (auto& parameter : parameters_) {
    if (parameter.grad().defined()) parameter.mutable_grad().zero_();
  }
}

void Optimizer::step() {
  optimizer_->step();
}

pth::Value Optimizer::state_dict() const {
  const auto& states = optimizer_->state();
  pth::Value state = pth::Value::dict();
  for (size_t index = 0; index < parameters_.size(); ++index) {
    const auto found = states.find(state_key<decltype(states)>(parameters_[index]));
    if (found == states.end()) continue;  // no step taken yet for this parameter
    pth::Value entry = pth::Value::dict();
    if (options_.name == "sgd") {
      const auto& sgd = static_cast<const torch::optim::SGDParamState&>(*found->second);
      if (sgd.momentum_buffer().defined()) {
        entry.set_item(key("momentum_buffer"), pth::Value::tensor(sgd.momentum_buffer()));
      }
    } else {
      const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*found->second);
      // torch.optim.AdamW (1.12 and later) keeps "step" as a float tensor.
      entry.set_item(key("step"), pth::Value::tensor(torch::tensor(static_cast<float>(adam.step()),
                                                                   torch::kFloat32)));
      entry.set_item(key("exp_avg"), pth::Value::tensor(adam.exp_avg()));
      entry.set_item(key("exp_avg_sq"), pth::Value::tensor(adam.exp_avg_sq()));
    }
    state.set_item(pth::Value::integer(static_cast<int64_t>(index)), entry);
  }
  std::vector<pth::Value> groups;
  size_t first = 0;
  for (size_t g = 0; g < group_sizes_.size(); ++g) {
    const auto& group_options = optimizer_->param_groups()[g].options();
    pth::Value group = pth::Value::dict();
    group.set_item(key("lr"), float_value(group_options.get_lr()));
    if (options_.name == "sgd") {
      const auto& sgd = static_cast<const torch::optim::SGDOptions&>(group_options);
      group.set_item(key("momentum"), float_value(sgd.momentum()));
      group.set_item(key("dampening"), float_value(sgd.dampening()));
      group.set_item(key("weight_decay"), float_value(sgd.weight_decay()));
      group.set_item(key("nesterov"), pth::Value::boolean(sgd.nesterov()));
    } else {
      const auto& adam = static_cast<const torch::optim::AdamWOptions&>(group_options);
      group.set_item(key("betas"), pth::Value::tuple({float_value(std::get<0>(adam.betas())),
                                                      float_value(std::get<1>(adam.betas()))}));
      group.set_item(key("eps"), float_value(adam.eps()));
      group.set_item(key("weight_decay"), float_value(adam.weight_decay()));
      group.set_item(key("amsgrad"), pth::Value::boolean(adam.amsgrad()));
    }
    group.set_item(key("maximize"), pth::Value::boolean(false));
    std::vector<pth::Value> indices;
    for (size_t i = first; i < first + group_sizes_[g]; ++i) {
      indices.push_back(pth::Value::integer(static_cast<int64_t>(i)));
    }
    first += group_sizes_[g];
    group.set_item(key("params"), pth::Value::list(std::move(indices)));
    groups.push_back(group);
  }
  pth::Value root = pth::Value::dict();
  root.set_item(key("state"), state);
  root.set_item(key("param_groups"), pth::Value::list(std::move(groups)));
  return root;
}

void Optimizer::load_state_dict(const pth::Value& root) {
  TORCH_CHECK(root.is(pth::Value::Kind::Dict), "optimizer state: expected a dict, got a ",
              root.type_name());
  const pth::Value& groups = item(root, "param_groups", "the checkpoint");
  TORCH_CHECK(groups.is(pth::Value::Kind::List) && groups.elements().size() == group_sizes_.size(),
              "optimizer state: the checkpoint has ",
              groups.is(pth::Value::Kind::List) ? groups.elements().size() : 0,
              " parameter groups, this optimiser ", group_sizes_.size(),
              " (was no-weight-decay-on-norm changed?)");
  for (size_t g = 0; g < group_sizes_.size(); ++g) {
    const pth::Value& params = item(groups.elements()[g], "params", "a parameter group");
    TORCH_CHECK(params.elements().size() == group_sizes_[g], "optimizer state: group ", g,
                " holds ", params.elements().size(), " parameters, this optimiser's ",
                group_sizes_[g]);
    const bool checkpoint_is_sgd = groups.elements()[g].find("momentum") != nullptr;
    TORCH_CHECK(checkpoint_is_sgd == (options_.name == "sgd"),
                "optimizer state: the checkpoint was written by ",
                checkpoint_is_sgd ? "sgd" : "adamw", ", this run uses ", options_.name);
  }
  const pth::Value& state = item(root, "state", "the checkpoint");
  auto& states = optimizer_->state();
  for (const auto& entry : state.items()) {
    const int64_t index = entry.first.as_int();
    TORCH_CHECK(index >= 0 && static_cast<size_t>(index) < parameters_.size(),
                "optimizer state: parameter index ", index, " is out of range");
    const torch::Tensor& parameter = parameters_[index];
    const auto with_options = [&](const torch::Tensor& t) {
      return t.to(parameter.options()).clone();
    };
    if (options_.name == "sgd") {
      auto sgd = std::make_unique<torch::optim::SGDParamState>();
      torch::Tensor buffer = torch::empty_like(parameter);
      copy_checked(buffer,
                   with_options(item(entry.second, "momentum_buffer", "sgd state").as_tensor()),
                   index, "momentum_buffer");
      sgd->momentum_buffer(buffer);
      states[state_key<decltype(states)>(parameter)] = std::move(sgd);
    } else {
      auto adam = std::make_unique<torch::optim::AdamWParamState>();
      adam->step(static_cast<int64_t>(
          item(entry.second, "step", "adamw state").as_tensor().item<double>()));
      torch::Tensor exp_avg = torch::empty_like(parameter);
      torch::Tensor exp_avg_sq = torch::empty_like(parameter);
      copy_checked(exp_avg, with_options(item(entry.second, "exp_avg", "adamw state").as_tensor()),
                   index, "exp_avg");
      copy_checked(exp_avg_sq,
                   with_options(item(entry.second, "exp_avg_sq", "adamw state").as_tensor()), index,
                   "exp_avg_sq");
      adam->exp_avg(exp_avg);
      adam->exp_avg_sq(exp_avg_sq);
      states[state_key<decltype(states)>(parameter)] = std::move(adam);
    }
  }
}

}  // namespace densenet::train

#include "densenet/io/pth_file.h"
#include "densenet/train/optimizer.h"

#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "support/expect_error.h"
#include "support/tensor_compare.h"

namespace densenet::train {
namespace {

// Written by tests/reference/make_optimizer_reference.py (the golden_data fixture).
std::string reference_path(const std::string& name) {
  return std::string(DENSENET_GOLDEN_DIR) + "/optimizer/" + name + ".pth";
}

// Parameters named as the reference's: conv.weight, norm.{weight,bias}, classifier.{weight,bias}.
struct Tiny : torch::nn::Module {
  explicit Tiny(const std::vector<torch::Tensor>& initial) {
    auto conv = register_module("conv", std::make_shared<torch::nn::Module>());
    auto norm = register_module("norm", std::make_shared<torch::nn::Module>());
    auto classifier = register_module("classifier", std::make_shared<torch::nn::Module>());
    conv->register_parameter("weight", initial[0].clone());
    norm->register_parameter("weight", initial[1].clone());
    norm->register_parameter("bias", initial[2].clone());
    classifier->register_parameter("weight", initial[3].clone());
    classifier->register_parameter("bias", initial[4].clone());
  }
};

std::vector<torch::Tensor> tensors(const pth::Value& list) {
  std::vector<torch::Tensor> result;
  for (const auto& element : list.elements()) result.push_back(element.as_tensor());
  return result;
}

struct Case {
  std::string name;
  OptimizerOptions options;
};

std::vector<Case> cases() {
  OptimizerOptions sgd_nesterov;
  sgd_nesterov.name = "sgd";
  sgd_nesterov.momentum = 0.9;
  sgd_nesterov.nesterov = true;
  sgd_nesterov.weight_decay = 1e-4;
  OptimizerOptions sgd_plain = sgd_nesterov;
  sgd_plain.nesterov = false;
  sgd_plain.weight_decay = 5e-4;
  sgd_plain.no_weight_decay_on_norm = true;
  OptimizerOptions adamw;
  adamw.name = "adamw";
  adamw.momentum = 0.9;
  adamw.weight_decay = 0.05;
  OptimizerOptions adamw_no_decay = adamw;
  adamw_no_decay.momentum = 0.8;
  adamw_no_decay.no_weight_decay_on_norm = true;
  return {{"sgd_nesterov", sgd_nesterov},
          {"sgd_plain_no_decay", sgd_plain},
          {"adamw", adamw},
          {"adamw_no_decay", adamw_no_decay}};
}

// Three steps on the reference's gradients give torch.optim's parameters after every step, and
// state_dict() holds torch.optim's state under torch.optim's parameter numbering.
TEST(Optimizer, StepsMatchTorchOptim) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const pth::Value root = pth::read_checkpoint(reference_path(c.name)).root;
    const auto initial = tensors(*root.find("initial"));
    Tiny model(initial);
    Optimizer optimizer(model, c.options);
    const auto named = model.named_parameters();
    const auto& steps = root.find("grads")->elements();
    const auto& lrs = root.find("lrs")->elements();
    const auto& after = root.find("after")->elements();
    for (size_t step = 0; step < steps.size(); ++step) {
      const auto grads = tensors(steps[step]);
      for (size_t i = 0; i < grads.size(); ++i) named[i].value().mutable_grad() = grads[i].clone();
      optimizer.set_lr(lrs[step].as_float());
      optimizer.step();
      const auto expected = tensors(after[step]);
      for (size_t i = 0; i < expected.size(); ++i) {
        // float64 with the same operations in the same order as torch.optim's single-tensor
        // path: equal up to a few ulps.
        EXPECT_TRUE(
            testing::tensors_close(named[i].key() + " after step " + std::to_string(step + 1),
                                   named[i].value().detach(), expected[i], 1e-14));
      }
    }
    // The same numbering: "order" lists the names in torch.optim's parameter order.
    const auto& order = root.find("order")->elements();
    ASSERT_EQ(order.size(), optimizer.parameters().size());
    for (size_t i = 0; i < order.size(); ++i) {
      EXPECT_TRUE(optimizer.parameters()[i].is_same(model.named_parameters()[order[i].as_string()]))
          << "parameter " << i << " should be " << order[i].as_string();
    }
    const pth::Value ours = optimizer.state_dict();
    const pth::Value& theirs = *root.find("state_dict");
    ASSERT_EQ(ours.find("param_groups")->elements().size(),
              theirs.find("param_groups")->elements().size());
    for (const auto& entry : theirs.find("state")->items()) {
      const int64_t index = entry.first.as_int();
      const pth::Value* mine = nullptr;
      for (const auto& candidate : ours.find("state")->items()) {
        if (candidate.first.as_int() == index) mine = &candidate.second;
      }
      ASSERT_NE(mine, nullptr) << "no state for parameter " << index;
      for (const auto& field : entry.second.items()) {
        const std::string name = field.first.as_string();
        ASSERT_NE(mine->find(name), nullptr) << "parameter " << index << " lacks " << name;
        EXPECT_TRUE(testing::tensors_close(name + " of parameter " + std::to_string(index),
                                           mine->find(name)->as_tensor().to(torch::kFloat64),
                                           field.second.as_tensor().to(torch::kFloat64), 1e-14));
      }
    }
  }
}

// A state restored into a fresh optimiser continues exactly as the original does.
TEST(Optimizer, StateDictRestoresExactly) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const pth::Value root = pth::read_checkpoint(reference_path(c.name)).root;
    const auto initial = tensors(*root.find("initial"));
    const auto& steps = root.find("grads")->elements();
    Tiny original(initial);
    Optimizer first(original, c.options);
    const auto apply = [&](Tiny& model, Optimizer& optimizer, size_t step) {
      const auto grads = tensors(steps[step]);
      const auto named = model.named_parameters();
      for (size_t i = 0; i < grads.size(); ++i) named[i].value().mutable_grad() = grads[i].clone();
      optimizer.step();
    };
    apply(original, first, 0);
    apply(original, first, 1);
    // Round trip through the file format too.
    const pth::Value saved =
        pth::parse_checkpoint(pth::serialize_checkpoint(first.state_dict()), "memory").root;
    std::vector<torch::Tensor> now;
    for (const auto& p : original.parameters()) now.push_back(p.detach().clone());
    Tiny copy(now);
    Optimizer second(copy, c.options);
    second.load_state_dict(saved);
    apply(original, first, 2);
    apply(copy, second, 2);
    for (size_t i = 0; i < now.size(); ++i) {
      EXPECT_TRUE(testing::tensors_identical("parameter " + std::to_string(i), copy.parameters()[i],
                                             original.parameters()[i]));
    }
  }
}

TEST(Optimizer, RejectsAnotherOptimizersState) {
  const pth::Value root = pth::read_checkpoint(reference_path("adamw")).root;
  Tiny model(tensors(*root.find("initial")));
  OptimizerOptions options;
  options.name = "sgd";
  Optimizer optimizer(model, options);
  EXPECT_ERROR_CONTAINS(optimizer.load_state_dict(*root.find("state_dict")),
                        "the checkpoint was written by adamw, this run uses sgd");
  options.name = "lamb";
  EXPECT_ERROR_CONTAINS(Optimizer(model, options), "unknown optimizer 'lamb': use sgd or adamw");
}

}  // namespace
}  // namespace densenet::train

#pragma once

#include "densenet/io/pth_value.h"

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>
#include <vector>

namespace densenet::train {

/// A float in a checkpoint, as a 0-dim float64 tensor: PyTorch 1.13's torch.load(weights_only=True)
/// has no pickle opcode for floats (BINFLOAT arrived in 2.0), and torch.optim takes 0-dim tensors
/// as hyperparameters (tests/reference/check_train_checkpoint.py loads one into torch.optim.SGD).
/// The value is exact.
pth::Value float_value(double value);

/// A number written by float_value, or a plain int or float.
double float_of(const pth::Value& value);

/// What builds the optimiser; the values of the config keys of the same names.
struct OptimizerOptions {
  std::string name = "sgd";  // sgd | adamw
  double lr = 0.1;
  double momentum = 0.9;  // SGD momentum; AdamW's beta1 (beta2 = 0.999 as torch.optim.AdamW)
  bool nesterov = true;
  double weight_decay = 1e-4;
  /// No weight decay on batch-norm parameters and biases: timm's rule (`param.ndim <= 1 or
  /// name.endswith(".bias")`, timm.optim.param_groups_weight_decay).
  bool no_weight_decay_on_norm = false;
};

/// A LibTorch optimiser over `model`'s parameters whose update equals torch.optim.SGD /
/// torch.optim.AdamW with the same options (tests/train/test_optimizer.cpp checks both against
/// torch.optim). Parameters are in model.named_parameters() order, split into the groups
/// [decayed, not decayed] when no_weight_decay_on_norm is set (the second group is omitted
/// when empty), as torch.optim numbers them.
class Optimizer {
 public:
  Optimizer(torch::nn::Module& model, const OptimizerOptions& options);

  /// Sets the learning rate of every group (the schedule's value for the next step).
  void set_lr(double lr);
  void zero_grad();
  void step();

  /// Parameters in torch.optim's numbering (group by group).
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  const OptimizerOptions& options() const { return options_; }

  /// torch.optim's `optimizer.state_dict()`: {"state": {index: {...}}, "param_groups": [...]}
  /// with SGD's "momentum_buffer" or AdamW's "step"/"exp_avg"/"exp_avg_sq", so that PyTorch
  /// can load it into the same optimiser.
  pth::Value state_dict() const;

  /// Restores a state_dict() of an optimiser of the same kind over the same parameters. Throws
  /// c10::Error naming what does not match (kind, parameter count, a tensor's shape).
  void load_state_dict(const pth::Value& state);

 private:
  OptimizerOptions options_;
  std::vector<torch::Tensor> parameters_;
  std::vector<size_t> group_sizes_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

}  // namespace densenet::train

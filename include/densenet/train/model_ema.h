#pragma once

#include "densenet/io/pth_value.h"
#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <string>

namespace densenet::train {

/// timm's ModelEmaV3 constructor arguments (timm/utils/model_ema.py), with its defaults except
/// `decay`, whose default is timm's train.py's (--model-ema-decay 0.9998). The run's config keys
/// set `decay` (model-ema-decay) and `use_warmup` (model-ema-warmup), as timm's train.py does;
/// the others keep ModelEmaV3's defaults there.
struct ModelEmaOptions {
  double decay = 0.9998;          // the decay per update, in [0, 1]
  double min_decay = 0.0;         // the warm-up's lower bound
  int64_t update_after_step = 0;  // updates before this step copy the weights (decay 0)
  bool use_warmup = false;        // decay = 1 - (1 + t / warmup_gamma)^(-warmup_power)
  double warmup_gamma = 1.0;      // (inv_gamma in @crowsonkb's EMA warm-up)
  double warmup_power = 2.0 / 3.0;
};

/// ModelEmaV3.get_decay(step): with t = max(0, step - update_after_step - 1), 0 when t = 0 (so
/// the first update copies the model), else `decay`, or with use_warmup
/// clamp(1 - (1 + t / warmup_gamma)^(-warmup_power), min_decay, decay). `step` counts
/// optimiser steps from 1, as timm's train.py's num_updates after its increment.
double model_ema_decay(const ModelEmaOptions& options, int64_t step);

/// An exponential moving average of a DenseNet's weights (Polyak averaging; timm's
/// --model-ema), as timm's ModelEmaV3 keeps it: a second model whose every state-dict entry
/// follows the trained model's after each optimiser step,
///   floating point (parameters, batch-norm running statistics): ema.lerp_(model, 1 - decay),
///   integer (num_batches_tracked): ema.copy_(model),
/// in the ema's own dtype (float32 weights stay float32 under amp: autocast does not change
/// parameters). It is evaluated like the model and saved in checkpoints as timm saves it
/// (`state_dict_ema`).
class ModelEma {
 public:
  /// A copy of `model` (same options, device and memory format, weights and buffers equal),
  /// in eval mode, without gradients. The copy is built without drawing from the default CPU
  /// generator, so that a run trains the same weights with or without an EMA. Throws c10::Error
  /// for a decay outside [0, 1] or a warmup_gamma <= 0.
  explicit ModelEma(const DenseNet& model, ModelEmaOptions options = {});

  /// ModelEmaV3.update(model, step): one update with model_ema_decay(options, step). `model`
  /// must have the ema's state-dict keys, shapes and dtypes (the trained model); throws
  /// c10::Error naming the first entry that differs. Runs without autograd.
  void update(const torch::nn::Module& model, int64_t step);

  /// ModelEmaV3.set(model): every entry copied from `model`.
  void set(const torch::nn::Module& model);

  /// The averaged model, for evaluation (keep it in eval mode).
  DenseNet& module() { return module_; }

  /// Its state dict (aliases its tensors), under torchvision's names: what checkpoints store.
  StateDict state_dict() const;

  /// Restores a state dict saved by state_dict(), strictly; throws c10::Error naming `source`
  /// and what does not fit.
  void load_state_dict(const StateDict& state, const std::string& source);

  const ModelEmaOptions& options() const { return options_; }

 private:
  ModelEmaOptions options_;
  DenseNet module_{nullptr};
};

/// best_ema.pth from a training checkpoint that holds an EMA (`state_dict_ema`): a checkpoint
/// whose `model` is the EMA's weights, with the run's `config`, `arch`, `classes`, `epoch`,
/// `num_parameters`, `best_ema_top1` and `best_ema_epoch`, so that `densenet eval`, `predict`
/// and torchvision load it as any checkpoint's model. It has no optimiser or position: it is
/// weights, not a state to resume. Throws c10::Error when `training_checkpoint` has no EMA.
pth::Value ema_weights_checkpoint(const pth::Value& training_checkpoint);

}  // namespace densenet::train

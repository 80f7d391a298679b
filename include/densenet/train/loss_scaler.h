#pragma once

#include "densenet/io/pth_value.h"

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace densenet::train {

/// torch.cuda.amp.GradScaler's constructor arguments, with its defaults.
struct LossScalerOptions {
  double init_scale = 65536.0;     // 2^16: the first scale
  double growth_factor = 2.0;      // the scale's factor after growth_interval clean steps
  double backoff_factor = 0.5;     // the scale's factor after a step with inf/NaN gradients
  int64_t growth_interval = 2000;  // consecutive clean steps before the scale grows
};

/// Dynamic loss scaling for mixed-precision training (the `loss-scale: dynamic` config key),
/// with torch.cuda.amp.GradScaler's semantics: the loss is multiplied by the scale S before
/// backward, so that small float16 gradients do not underflow; then, per optimiser step,
///   1. unscale(): every gradient is multiplied by 1/S (float32, from 1/S in double, as
///      GradScaler.unscale_ forms it), and any inf or NaN among the scaled gradients is noted;
///   2. the caller steps the optimiser only when all were finite (a skipped step leaves the
///      parameters and the optimiser state as they were), clipping after unscale();
///   3. update(found_inf): with inf/NaN, S *= backoff_factor and the count of clean steps is
///      reset; else the count grows, and on reaching growth_interval it is reset and
///      S *= growth_factor unless that would overflow float32 (torch._amp_update_scale_).
/// S (float32) and the clean-step count (int32) live on the scaler's device, as GradScaler's.
///
/// On CUDA the two steps are ATen's kernels (_amp_foreach_non_finite_check_and_unscale_,
/// _amp_update_scale_). On the CPU they are written with tensor operations: LibTorch 1.13 has
/// no CPU kernels for them (they arrived in 2.3), and the arithmetic is the same, element for
/// element (tests/train/test_loss_scaler.cpp checks it against GradScaler's formulas).
class LossScaler {
 public:
  /// Throws c10::Error naming the option when a factor or the interval is out of range
  /// (init_scale finite > 0, growth_factor > 1, 0 < backoff_factor < 1, growth_interval >= 1).
  LossScaler(const LossScalerOptions& options, const torch::Device& device);

  /// loss * S, (1,) float32 (GradScaler.scale's result, which backward accepts as a scalar).
  torch::Tensor scale(const torch::Tensor& loss) const;

  /// Step 1 above on the gradients of `parameters` (those with none are left out), in place.
  /// Returns found_inf: whether any scaled gradient held an inf or a NaN.
  bool unscale(const std::vector<torch::Tensor>& parameters);

  /// Step 3 above, after the step was taken (found_inf false) or skipped (true).
  void update(bool found_inf);

  double scale_value() const;      // S
  int64_t growth_tracker() const;  // clean steps since the last growth or backoff
  const LossScalerOptions& options() const { return options_; }

  /// GradScaler.state_dict()'s keys: "scale", "growth_factor", "backoff_factor",
  /// "growth_interval", "_growth_tracker" (numbers as float_value / integers, exact), so that
  /// torch.cuda.amp.GradScaler.load_state_dict can take it.
  pth::Value state_dict() const;

  /// Restores S and the clean-step count of a state_dict(); the factors and the interval stay
  /// this scaler's (the run's configuration). Throws c10::Error naming a missing key or an
  /// impossible value.
  void load_state_dict(const pth::Value& state);

 private:
  LossScalerOptions options_;
  torch::Tensor scale_;           // (1,) float32 on the device: S
  torch::Tensor growth_tracker_;  // (1,) int32 on the device
};

}  // namespace densenet::train

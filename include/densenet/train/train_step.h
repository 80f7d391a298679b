#pragma once

#include "densenet/model/densenet.h"

#include <c10/core/ScalarType.h>
#include <torch/types.h>

#include <cstdint>
#include <optional>

namespace densenet::distributed {
class GradientBuckets;
}

namespace densenet::train {

class LossScaler;
class Optimizer;

/// What one batch's forward and backward gave.
struct BatchResult {
  double loss_sum = 0;  // summed cross-entropy (with label smoothing) over the batch
  int64_t correct = 0;  // top-1 correct
  bool finite = true;   // false: a piece's loss was NaN or infinite (its backward was skipped)
};

/// One batch's forward and backward in `splits` pieces (num-batch-splits): each piece's summed
/// cross-entropy is divided by the whole batch's size, so the accumulated gradients are those of
/// the whole batch's mean loss, up to batch-norm statistics, which each piece computes over its
/// own images. (The original project divides by the piece's size: a gradient `splits` times too
/// large.) images (N, C, H, W), labels (N) int64 on the model's device.
/// With `buckets` (data-parallel), the last piece's backward all-reduces the gradients (the
/// caller then calls buckets->finish()), and a non-finite loss does not skip backward: the other
/// ranks are waiting for this rank's buckets. The caller stops on `finite` being false anywhere.
/// With `autocast` (amp), each piece's forward and loss run under AutocastGuard in that dtype,
/// and backward outside it; with `scaler`, each piece's loss is multiplied by the loss scale
/// before backward, so the gradients are scaled (the caller unscales them: LossScaler).
BatchResult accumulate_gradients(DenseNet& model, const torch::Tensor& images,
                                 const torch::Tensor& labels, int64_t splits,
                                 double label_smoothing,
                                 distributed::GradientBuckets* buckets = nullptr,
                                 std::optional<c10::ScalarType> autocast = std::nullopt,
                                 const LossScaler* scaler = nullptr);

/// The optimiser step after accumulate_gradients, as torch.cuda.amp.GradScaler's recipe takes
/// it: with `scaler`, the gradients are unscaled first, and when any is inf or NaN the step is
/// skipped (parameters and optimiser state untouched) and the scale backs off; otherwise the
/// gradient norm is clipped to `clip` (0: not clipped), the optimiser steps, and the scale
/// counts a clean step (LossScaler::update). Returns whether the step was taken.
bool step_optimizer(Optimizer& optimizer, double clip, LossScaler* scaler = nullptr);

}  // namespace densenet::train

#include "densenet/train/train_step.h"

#include "densenet/distributed/gradient_buckets.h"
#include "densenet/train/amp.h"
#include "densenet/train/loss_scaler.h"
#include "densenet/train/metrics.h"
#include "densenet/train/optimizer.h"

#include <torch/nn/functional/loss.h>
#include <torch/nn/utils/clip_grad.h>

#include <cmath>

namespace densenet::train {

BatchResult accumulate_gradients(DenseNet& model, const torch::Tensor& images,
                                 const torch::Tensor& labels, int64_t splits,
                                 double label_smoothing, distributed::GradientBuckets* buckets,
                                 std::optional<c10::ScalarType> autocast,
                                 const LossScaler* scaler) {
  namespace F = torch::nn::functional;
  const auto options =
      F::CrossEntropyFuncOptions().reduction(torch::kSum).label_smoothing(label_smoothing);
  const double n = static_cast<double>(labels.size(0));
  BatchResult result;
  const auto image_pieces = images.chunk(splits);
  const auto label_pieces = labels.chunk(splits);
  for (size_t p = 0; p < image_pieces.size(); ++p) {
    torch::Tensor logits, loss;  // (n_p, classes) in the autocast dtype under amp; () float32
    {
      const AutocastGuard autocast_scope(image_pieces[p].device().type(), autocast);
      logits = model->forward(image_pieces[p]);
      loss = F::cross_entropy(logits, label_pieces[p], options);
    }
    const double value = loss.item<double>();
    result.loss_sum += value;
    if (!std::isfinite(value)) {
      result.finite = false;
      if (buckets == nullptr) return result;
    }
    if (buckets != nullptr && p + 1 == image_pieces.size()) buckets->arm();
    const torch::Tensor mean_part = loss / n;
    (scaler != nullptr ? scaler->scale(mean_part) : mean_part).backward();
    torch::NoGradGuard no_grad;
    result.correct += count_topk_correct(logits.detach(), label_pieces[p], {1})[0];
  }
  return result;
}

bool step_optimizer(Optimizer& optimizer, double clip, LossScaler* scaler) {
  const auto& parameters = optimizer.parameters();
  // Unscaled before clipping, so that `clip` bounds the true gradient norm.
  const bool found_inf = scaler != nullptr && scaler->unscale(parameters);
  if (!found_inf) {
    if (clip > 0) torch::nn::utils::clip_grad_norm_(parameters, clip);
    optimizer.step();
  }
  if (scaler != nullptr) scaler->update(found_inf);
  return !found_inf;
}

}  // namespace densenet::train

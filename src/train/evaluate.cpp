#include "densenet/train/evaluate.h"

#include "densenet/data/loader.h"
#include "densenet/distributed/process_group.h"
#include "densenet/train/metrics.h"

#include <c10/util/Exception.h>
#include <torch/nn/functional/loss.h>

#include <chrono>

namespace densenet::train {

EvalResult evaluate(DenseNet& model, data::DataLoader& loader, const torch::Device& device,
                    int64_t epoch, distributed::ProcessGroup* group) {
  const auto start = std::chrono::steady_clock::now();
  model->eval();
  torch::NoGradGuard no_grad;
  EvalResult result;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  loader.start_epoch(epoch);
  while (auto batch = loader.next()) {
    const torch::Tensor images = batch->images.to(device, /*non_blocking=*/true);
    const torch::Tensor labels = batch->labels.to(device, /*non_blocking=*/true);
    const torch::Tensor logits = model->forward(images);
    loss_sum +=
        torch::nn::functional::cross_entropy(
            logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
            .item<double>();
    const std::vector<int64_t> correct = count_topk_correct(logits, labels, {1, 5});
    top1 += correct[0];
    top5 += correct[1];
    result.images += labels.size(0);
  }
  int64_t skipped = loader.epoch_stats().skipped;
  if (group != nullptr) {
    // Sums in float64: counts stay exact far beyond any evaluation set.
    const torch::Tensor sums =
        torch::tensor({loss_sum, static_cast<double>(top1), static_cast<double>(top5),
                       static_cast<double>(result.images), static_cast<double>(skipped)},
                      torch::kFloat64);
    group->allreduce(sums, distributed::Reduction::sum, "the all-reduce of the evaluation sums");
    loss_sum = sums[0].item<double>();
    top1 = static_cast<int64_t>(sums[1].item<double>());
    top5 = static_cast<int64_t>(sums[2].item<double>());
    result.images = static_cast<int64_t>(sums[3].item<double>());
    skipped = static_cast<int64_t>(sums[4].item<double>());
  }
  // "Empty" would hide the cause when every image was there but none could be read.
  TORCH_CHECK(result.images > 0 || skipped > 0, "the evaluation set is empty");
  TORCH_CHECK(result.images > 0, "the evaluation set has ", skipped,
              " images, all unreadable (skipped; see the warnings above)");
  const double n = static_cast<double>(result.images);
  result.loss = loss_sum / n;
  result.top1 = 100.0 * static_cast<double>(top1) / n;
  result.top5 = 100.0 * static_cast<double>(top5) / n;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace densenet::train

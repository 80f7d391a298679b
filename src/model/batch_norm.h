#pragma once

// Batch-norm pieces shared by the naive modules and the efficient stage: the running-statistics
// update, and sync-bn (statistics of the global batch, include/densenet/model/sync_batch_norm.h).

#include "densenet/model/sync_batch_norm.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

#include <cstdint>
#include <utility>

namespace densenet::kernels {
struct DeferredNormTerms;
}

namespace densenet::detail {

/// Makes `all_reduce` the sync-bn all-reduce of the batch norms that run on this thread while
/// the scope is alive (nullptr: none; scopes nest). DenseNetImpl::forward opens one, so that
/// the modules below it need no extra argument; the autograd operations keep the function for
/// their backward, which may run on another thread.
class BatchNormSyncScope {
 public:
  explicit BatchNormSyncScope(const BatchNormAllReduce* all_reduce);
  ~BatchNormSyncScope();
  BatchNormSyncScope(const BatchNormSyncScope&) = delete;
  BatchNormSyncScope& operator=(const BatchNormSyncScope&) = delete;

 private:
  const BatchNormAllReduce* previous_;
};

/// The sync-bn all-reduce of the innermost scope on this thread, or nullptr.
const BatchNormAllReduce* current_batch_norm_sync();

/// norm(x) for x (N, C, H, W): torch::nn::BatchNorm2d's forward, except that in training mode
/// inside a sync scope the statistics (and the running-statistics update) are those of the
/// global batch, and backward sums its per-channel terms over the replicas too.
torch::Tensor batch_norm(torch::nn::BatchNorm2dImpl& norm, const torch::Tensor& x);

/// Updates `norm`'s running statistics once, as torch::nn::BatchNorm2d's forward does
/// (momentum, or a cumulative average when momentum is unset; unbiased variance over `count`
/// values per channel). batch_mean and batch_var (biased) are double (C,).
void update_running_stats(torch::nn::BatchNorm2dImpl& norm, const torch::Tensor& batch_mean,
                          const torch::Tensor& batch_var, int64_t count);

/// Per-channel mean and biased variance over all replicas.
struct GlobalMoments {
  torch::Tensor mean;  // (C,) double
  torch::Tensor var;   // (C,) double, biased
  int64_t count = 0;   // values per channel over all replicas
};

/// Combines each replica's mean and biased variance (double (C,)) over `count` values per
/// channel, with one all-reduce of (sum, sum of squares, count) in double: the variance loses
/// about mean^2/var * 1e-16 relative to a two-pass one, negligible for activations.
GlobalMoments all_reduce_moments(const BatchNormAllReduce& all_reduce, const torch::Tensor& mean,
                                 const torch::Tensor& var, int64_t count);

/// The batch-statistics terms of a norm's input gradient under sync-bn. A batch norm's
/// backward is dx = scale * dz + k1 + (x - mean) * k2 with scale = gamma * invstd,
///   k1 = -scale * sum(dz) / M,  k2 = -scale * invstd * sum(dz * xhat) / M   (per channel),
/// where the sums run over the global batch and M counts its values (the replicas' local sums
/// are `grad_beta` and `grad_gamma`, the parameter gradients of the norm, (C,)). Returns
/// (k1, k2), double (C,). One all-reduce.
std::pair<torch::Tensor, torch::Tensor> all_reduce_norm_terms(const BatchNormAllReduce& all_reduce,
                                                              const torch::Tensor& grad_gamma,
                                                              const torch::Tensor& grad_beta,
                                                              const torch::Tensor& scale,
                                                              const torch::Tensor& invstd,
                                                              int64_t count);

/// grad_x += k1 + (x - mean) * k2 per channel; x and grad_x (N, C, H, W) with contiguous
/// planes (channel prefixes of a block buffer allowed), mean/k1/k2 (C,).
void add_norm_terms(const torch::Tensor& x, torch::Tensor& grad_x, const torch::Tensor& mean,
                    const torch::Tensor& k1, const torch::Tensor& k2);

/// Records k1, k2 (and mean) for channels [0, C) in `owed`, to be added by the next pass over
/// those channels (kernels/norm_relu_conv1x1.h); those channels must owe nothing yet.
void owe_norm_terms(kernels::DeferredNormTerms& owed, const torch::Tensor& mean,
                    const torch::Tensor& k1, const torch::Tensor& k2);

}  // namespace densenet::detail

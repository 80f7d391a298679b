#include "model/batch_norm.h"

#include "kernels/bn_relu.h"
#include "kernels/norm_relu_conv1x1.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

namespace densenet::detail {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

thread_local const BatchNormAllReduce* current_sync = nullptr;

Tensor per_channel(const Tensor& t) {
  return t.view({1, -1, 1, 1});
}

/// What the sync-bn operation keeps for backward besides x and gamma.
struct SyncBatchNormState : torch::CustomClassHolder {
  BatchNormAllReduce all_reduce;
  Tensor mean;    // (C,) x's dtype
  Tensor invstd;  // (C,) x's dtype
  int64_t count = 0;
};

/// y = (x - mean) * invstd * gamma + beta with the global batch's statistics; backward as
/// torch.nn.SyncBatchNorm's: the parameter gradients stay the replica's own (data parallelism
/// averages them with every other gradient), the input gradient uses the global sums.
struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, const c10::intrusive_ptr<SyncBatchNormState>& state,
                        torch::nn::BatchNorm2dImpl* norm) {
    const int64_t count = x.size(0) * x.size(2) * x.size(3);
    auto [local_mean, local_var] = kernels::channel_mean_var(x);
    const GlobalMoments moments = all_reduce_moments(
        state->all_reduce, local_mean.to(torch::kDouble), local_var.to(torch::kDouble), count);
    TORCH_CHECK(moments.count > 1,
                "Expected more than 1 value per channel when training (global batch x height x "
                "width = ",
                moments.count, ")");
    update_running_stats(*norm, moments.mean, moments.var, moments.count);
    state->mean = moments.mean.to(x.scalar_type());
    state->invstd = (moments.var + norm->options.eps()).rsqrt().to(x.scalar_type());
    state->count = moments.count;
    ctx->save_for_backward({x, gamma});
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return (x - per_channel(state->mean)) * per_channel(state->invstd * gamma) + per_channel(beta);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto state = c10::static_intrusive_pointer_cast<SyncBatchNormState>(
        ctx->saved_data["state"].toCapsule());
    const auto saved = ctx->get_saved_variables();
    const Tensor& x = saved[0];
    const Tensor& gamma = saved[1];
    const Tensor& dy = grad_outputs[0];
    const Tensor xhat = (x - per_channel(state->mean)) * per_channel(state->invstd);
    const Tensor grad_beta = dy.sum({0, 2, 3}, /*keepdim=*/false, torch::kDouble);
    const Tensor grad_gamma = (dy * xhat).sum({0, 2, 3}, /*keepdim=*/false, torch::kDouble);
    const Tensor scale = gamma * state->invstd;
    auto [k1, k2] =
        all_reduce_norm_terms(state->all_reduce, grad_gamma, grad_beta, scale.to(torch::kDouble),
                              state->invstd.to(torch::kDouble), state->count);
    Tensor dx = dy * per_channel(scale);
    add_norm_terms(x, dx, state->mean, k1, k2);
    return {dx, grad_gamma.to(gamma.scalar_type()), grad_beta.to(gamma.scalar_type()), Tensor(),
            Tensor()};
  }
};

}  // namespace

BatchNormSyncScope::BatchNormSyncScope(const BatchNormAllReduce* all_reduce)
    : previous_(current_sync) {
  current_sync = all_reduce;
}

BatchNormSyncScope::~BatchNormSyncScope() {
  current_sync = previous_;
}

const BatchNormAllReduce* current_batch_norm_sync() {
  return current_sync;
}

Tensor batch_norm(torch::nn::BatchNorm2dImpl& norm, const Tensor& x) {
  const BatchNormAllReduce* sync = current_batch_norm_sync();
  if (sync == nullptr || !norm.is_training()) return norm.forward(x);
  TORCH_CHECK(norm.options.affine(), "sync-bn needs affine batch norms (as every DenseNet's are)");
  TORCH_CHECK(x.dim() == 4, "expected (N, C, H, W) input, got ", x.sizes());
  auto state = c10::make_intrusive<SyncBatchNormState>();
  state->all_reduce = *sync;
  return SyncBatchNormFunction::apply(x.contiguous(), norm.weight, norm.bias, state, &norm);
}

void update_running_stats(torch::nn::BatchNorm2dImpl& norm, const Tensor& batch_mean,
                          const Tensor& batch_var, int64_t count) {
  if (!norm.options.track_running_stats()) return;
  norm.num_batches_tracked.add_(1);
  const double factor = norm.options.momentum().has_value()
                            ? *norm.options.momentum()
                            : 1.0 / norm.num_batches_tracked.item<double>();
  const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
  // In double, then rounded once, as ATen's batch norm does.
  const auto dtype = norm.running_mean.scalar_type();
  norm.running_mean.copy_(
      (batch_mean * factor + norm.running_mean.to(torch::kDouble) * (1.0 - factor)).to(dtype));
  norm.running_var.copy_(
      (batch_var * (unbias * factor) + norm.running_var.to(torch::kDouble) * (1.0 - factor))
          .to(dtype));
}

GlobalMoments all_reduce_moments(const BatchNormAllReduce& all_reduce, const Tensor& mean,
                                 const Tensor& var, int64_t count) {
  const int64_t c = mean.size(0);
  const double n = static_cast<double>(count);
  // (sum, sum of squares, count): (2C + 1,)
  Tensor sums = torch::cat({mean * n, (var + mean * mean) * n,
                            torch::full({1}, n, mean.options().dtype(torch::kDouble))})
                    .contiguous();
  all_reduce(sums);
  GlobalMoments global;
  const double total = sums[2 * c].item<double>();
  global.count = static_cast<int64_t>(total + 0.5);
  global.mean = sums.narrow(0, 0, c) / total;
  global.var = (sums.narrow(0, c, c) / total - global.mean * global.mean).clamp_min_(0.0);
  return global;
}

std::pair<Tensor, Tensor> all_reduce_norm_terms(const BatchNormAllReduce& all_reduce,
                                                const Tensor& grad_gamma, const Tensor& grad_beta,
                                                const Tensor& scale, const Tensor& invstd,
                                                int64_t count) {
  const int64_t c = grad_beta.size(0);
  Tensor sums = torch::cat({grad_beta.to(torch::kDouble), grad_gamma.to(torch::kDouble)});
  all_reduce(sums);
  const Tensor s = scale.to(torch::kDouble) / static_cast<double>(count);
  Tensor k1 = -s * sums.narrow(0, 0, c);
  Tensor k2 = -s * invstd.to(torch::kDouble) * sums.narrow(0, c, c);
  return {k1, k2};
}

void owe_norm_terms(kernels::DeferredNormTerms& owed, const Tensor& mean, const Tensor& k1,
                    const Tensor& k2) {
  const Tensor m = mean.to(torch::kDouble).contiguous().cpu();
  const Tensor a = k1.to(torch::kDouble).contiguous().cpu();
  const Tensor b = k2.to(torch::kDouble).contiguous().cpu();
  const double* mp = m.data_ptr<double>();
  const double* ap = a.data_ptr<double>();
  const double* bp = b.data_ptr<double>();
  TORCH_INTERNAL_ASSERT(m.numel() <= owed.channels(), "owe_norm_terms: too many channels");
  for (int64_t ch = 0; ch < m.numel(); ++ch) {
    const size_t j = static_cast<size_t>(ch);
    TORCH_INTERNAL_ASSERT(owed.offset[j] == 0.0 && owed.slope[j] == 0.0, "owe_norm_terms: channel ",
                          ch, " still owes terms");
    owed.offset[j] = ap[ch];
    owed.slope[j] = bp[ch];
    owed.mean[j] = mp[ch];
  }
}

void add_norm_terms(const Tensor& x, Tensor& grad_x, const Tensor& mean, const Tensor& k1,
                    const Tensor& k2) {
  const int64_t c = x.size(1);
  const bool planes = x.is_cpu() && grad_x.is_cpu() && x.scalar_type() == grad_x.scalar_type() &&
                      (x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble) &&
                      x.stride(3) == 1 && x.stride(2) == x.size(3) && grad_x.stride(3) == 1 &&
                      grad_x.stride(2) == grad_x.size(3);
  if (planes) {
    // The kernel the efficient stage settles its deferred terms with: one pass, in place.
    kernels::DeferredNormTerms terms(c);
    owe_norm_terms(terms, mean, k1, k2);
    kernels::apply_deferred_norm_terms(x, grad_x, terms, 0);
    return;
  }
  // In float32 for 16-bit data (one rounding, where grad_x takes the sum), else in its dtype.
  const auto type = grad_x.scalar_type();
  const auto math = type == torch::kBFloat16 || type == torch::kHalf ? torch::kFloat : type;
  grad_x.add_(per_channel(k1.to(math)) +
              (x.to(math) - per_channel(mean.to(math))) * per_channel(k2.to(math)));
}

}  // namespace densenet::detail

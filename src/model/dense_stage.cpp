// GCC 13 with LibTorch 2.x: torch::autograd::Function::apply (instantiated below) reserves a
// std::vector<bool>, and GCC reports a memmove in libstdc++'s vector<bool> copy that cannot go
// out of bounds: -Warray-bounds, and -Wstringop-overflow for the same memmove once the first is
// off; false positives both. A diagnostic pragma applies where the code it warns about is
// written, here libstdc++'s headers, so it encloses the includes; the rest of this file keeps
// both warnings.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#include "model/dense_stage.h"

#include "kernels/bn_relu.h"
#include "kernels/gemm.h"
#include "kernels/norm_relu_conv1x1.h"
#include "model/batch_norm.h"
#include "model/stage_chunks.h"
#include "util/autocast.h"
#include "util/blas_threads.h"
#include "util/parallel.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>
#include <algorithm>
#include <optional>

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 13
#pragma GCC diagnostic pop
#endif

namespace densenet::detail {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using BatchNorm = std::shared_ptr<torch::nn::BatchNorm2dImpl>;

// ---------------------------------------------------------------------------------------------
// Building blocks

Tensor conv2d(const Tensor& input, const Tensor& weight, int64_t padding) {
  return at::convolution(input, weight, /*bias=*/{}, /*stride=*/{1, 1}, {padding, padding},
                         /*dilation=*/{1, 1}, /*transposed=*/false, /*output_padding=*/{0, 0},
                         /*groups=*/1);
}

/// Returns (grad_input, grad_weight); grad_input is undefined unless requested.
std::pair<Tensor, Tensor> conv2d_backward(const Tensor& grad_output, const Tensor& input,
                                          const Tensor& weight, int64_t padding, bool input_grad) {
  auto grads = at::convolution_backward(grad_output, input, weight, /*bias_sizes=*/c10::nullopt,
                                        {1, 1}, {padding, padding}, {1, 1}, false, {0, 0}, 1,
                                        {input_grad, true, false});
  return {std::get<0>(grads), std::get<1>(grads)};
}

bool is_16_bit(const Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
}

/// The dtype sums over a 16-bit tensor are kept in: float32 (a 16-bit sum rounds at every
/// addition: bfloat16 keeps 8 significant bits); any other dtype its own.
torch::ScalarType sum_dtype(const Tensor& t) {
  return is_16_bit(t) ? torch::kFloat : t.scalar_type();
}

int64_t chunk_samples(const Tensor& t, int64_t chunks = kCpuChunks) {
  const int64_t batch = t.size(0);
  if (!t.is_cpu()) return std::max<int64_t>(1, batch);
  return std::max<int64_t>(1, (batch + chunks - 1) / chunks);
}

/// conv2d over chunks of the batch, (N, C_in, H, W) -> (N, C_out, H, W).
Tensor conv2d_chunked(const Tensor& input, const Tensor& weight, int64_t padding) {
  const int64_t n = input.size(0), step = chunk_samples(input);
  if (step >= n) return conv2d(input, weight, padding);
  Tensor out = torch::empty({n, weight.size(0), input.size(2), input.size(3)}, input.options());
  for (int64_t start = 0; start < n; start += step) {
    const int64_t len = std::min(step, n - start);
    out.narrow(0, start, len).copy_(conv2d(input.narrow(0, start, len), weight, padding));
  }
  return out;
}

/// Backward of conv2d over chunks of the batch. The input gradient overwrites
/// `input_then_grad` chunk by chunk: a chunk of the input is dead once that chunk's weight
/// gradient has been taken. Returns the weight gradient. `grad_output_of(start, len)` gives
/// the output gradient of a chunk, so that it too is formed a chunk at a time.
template <typename GradOutputOf>
Tensor conv2d_backward_in_place(GradOutputOf grad_output_of, Tensor& input_then_grad,
                                const Tensor& weight, int64_t padding,
                                int64_t chunks = kCpuChunks) {
  const int64_t n = input_then_grad.size(0), step = chunk_samples(input_then_grad, chunks);
  Tensor grad_weight;
  for (int64_t start = 0; start < n; start += step) {
    const int64_t len = std::min(step, n - start);
    Tensor input = input_then_grad.narrow(0, start, len);
    auto [grad_input, chunk_grad_weight] =
        conv2d_backward(grad_output_of(start, len), input, weight, padding, /*input_grad=*/true);
    input.copy_(grad_input);
    // Chunks' weight gradients are summed in float32 at least (sum_dtype).
    const Tensor chunk = chunk_grad_weight.to(sum_dtype(chunk_grad_weight));
    grad_weight = grad_weight.defined() ? grad_weight.add_(chunk) : chunk;
  }
  return grad_weight;
}

/// Backward of a 1x1 convolution on the CPU as GEMMs over each sample's channel planes, with
/// the same interface as conv2d_backward_in_place. For sample n, with X_n (C, HW) and dY_n
/// (B, HW) both read in place: dW += dY_n X_n^T, then dX_n = W^T dY_n overwrites X_n. No
/// blocked-layout copies (which oneDNN makes of the input and output gradient, and which made
/// the chunking necessary), and the GEMMs (oneDNN's, kernels/gemm.h) run at their rate. Samples
/// run in parallel, one single-threaded GEMM pair each, with a dW per thread summed at the end:
/// the GEMMs are small (B = 4k rows). oneDNN runs on one thread inside the parallel loop.
template <typename GradOutputOf>
Tensor conv1x1_backward_in_place(GradOutputOf grad_output_of, Tensor& input_then_grad,
                                 const Tensor& weight) {
  const int64_t n = input_then_grad.size(0), c = input_then_grad.size(1);
  const int64_t plane = input_then_grad.size(2) * input_then_grad.size(3);
  const int64_t b = weight.size(0);
  const Tensor w = weight.reshape({b, c});               // (B, C)
  const Tensor x = input_then_grad.view({n, c, plane});  // (N, C, HW)
  // One partial dW per worker thread, (T, B, C), float32 at least (the GEMMs' sums of 16-bit
  // data are float32); summed in a fixed order.
  const int64_t workers = max_parallel_threads();
  Tensor partial_grad_w = torch::zeros({workers, b, c}, weight.options().dtype(sum_dtype(weight)));
  const int64_t step = chunk_samples(input_then_grad);
  for (int64_t start = 0; start < n; start += step) {
    const int64_t len = std::min(step, n - start);
    const Tensor dy = grad_output_of(start, len).reshape({len, b, plane});  // (len, B, HW)
    parallel_for_with_state(0, len, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
      Tensor grad_w = partial_grad_w[at::get_thread_num()];  // (B, C)
      for (int64_t i = begin; i < end; ++i) {
        Tensor x_n = x[start + i];                             // (C, HW)
        kernels::gemm(dy[i], x_n.t(), grad_w, /*beta=*/1.0f);  // dW += dY_n X_n^T
        kernels::gemm(w.t(), dy[i], x_n);                      // dX_n = W^T dY_n
      }
    });
  }
  return partial_grad_w.sum(0).view_as(weight);
}

/// The 1x1 convolution backward this build runs fastest: GEMMs on the CPU, the library's
/// convolution (cuDNN) elsewhere.
template <typename GradOutputOf>
Tensor pointwise_conv_backward_in_place(GradOutputOf grad_output_of, Tensor& input_then_grad,
                                        const Tensor& weight) {
  if (input_then_grad.is_cpu() && input_then_grad.is_contiguous()) {
    return conv1x1_backward_in_place(grad_output_of, input_then_grad, weight);
  }
  return conv2d_backward_in_place(grad_output_of, input_then_grad, weight, 0);
}

/// Gradients of conv(relu(bn(x))), see norm_relu_conv_backward.
struct NormReluConvGrads {
  Tensor conv_weight;
  Tensor gamma, beta;
  Tensor input;  // dx, unless it was accumulated into a given tensor
};

/// One BatchNorm2d as the stage applies it: the statistics its forward used and the affine
/// transform they give, (x - mean) * scale + beta with scale = gamma * invstd.
struct NormState {
  Tensor mean;    // (C,) batch mean (training) or running mean (eval)
  Tensor invstd;  // (C,) 1 / sqrt(var + eps) of the same
  Tensor scale;   // (C,)
  Tensor beta;    // (C,) the norm's bias
};

/// Per-channel batch statistics in the form this device's norms take them.
/// CPU: mean and biased variance in double, as ATen's CPU batch norm keeps them before deriving
/// invstd. CUDA: mean and invstd (formed with `eps`) in the accumulation type, from ATen's CUDA
/// batch-norm kernels, which the fused running-statistics update takes as they are: on a GPU
/// each small operation costs a kernel launch, and the double-precision bookkeeping of the CPU
/// path (a dozen tiny operations per norm) made the forward pass launch-bound.
/// Under sync-bn: mean and biased variance of the global batch in double on any device.
struct ChannelStats {
  Tensor mean;     // (C,)
  Tensor spread;   // (C,) var (CPU, sync-bn) or invstd (CUDA)
  double eps = 0;  // CUDA: the eps in invstd
  Tensor counts;   // CUDA: (1,) values per channel, for batch_norm_gather_stats_with_counts
  bool holds_invstd = false;
  int64_t count = 0;  // values per channel they were taken over (all replicas under sync-bn)

  ChannelStats narrow(int64_t first, int64_t c) const {
    return {mean.narrow(0, first, c), spread.narrow(0, first, c), eps, counts, holds_invstd, count};
  }
};

/// Statistics of x's channels over (N, H, W), and over every replica when `sync` is given
/// (one all-reduce); `eps` is the eps of the norm(s) that will use them. CUDA: `counts` is (1,)
/// N*H*W in the statistics' dtype, made once per stage.
ChannelStats channel_stats(const Tensor& x, double eps, const Tensor& counts,
                           const BatchNormAllReduce* sync) {
  const int64_t count = x.size(0) * x.size(2) * x.size(3);
  if (sync != nullptr) {
    auto [mean, var] = kernels::channel_mean_var(x);
    const GlobalMoments global =
        all_reduce_moments(*sync, mean.to(torch::kDouble), var.to(torch::kDouble), count);
    return {global.mean, global.var, eps, Tensor(), false, global.count};
  }
  if (x.is_cuda()) {
    auto [mean, invstd] = at::batch_norm_stats(x, eps);
    return {mean, invstd, eps, counts, true, count};
  }
  auto [mean, var] = kernels::channel_mean_var(x);
  return {mean, var, eps, Tensor(), false, count};
}

/// `stats` are the batch statistics of the norm's input channels (training, or eval without
/// running statistics; undefined otherwise). On the CPU invstd is derived in double and
/// rounded once, as in ATen; on CUDA one fused kernel updates the running statistics and
/// returns mean and invstd, as SyncBatchNorm does.
NormState prepare_norm(torch::nn::BatchNorm2dImpl& norm, const Tensor& gamma, const Tensor& beta,
                       bool training, const ChannelStats& stats, const Tensor& input) {
  const double eps = norm.options.eps();
  const int64_t count = stats.count;
  const bool batch_statistics = training || !norm.options.track_running_stats();
  NormState state;
  if (batch_statistics) {
    TORCH_CHECK(count > 1,
                "Expected more than 1 value per channel when training (batch x "
                "height x width = ",
                count, ")");
    const bool fused_update = stats.holds_invstd && training &&
                              norm.options.track_running_stats() &&
                              norm.options.momentum().has_value() && stats.eps == eps;
    if (fused_update) {
      norm.num_batches_tracked.add_(1);
      auto [mean, invstd] = at::batch_norm_gather_stats_with_counts(
          input, stats.mean.unsqueeze(0), stats.spread.unsqueeze(0), norm.running_mean,
          norm.running_var, *norm.options.momentum(), eps, stats.counts);
      state.mean = mean.to(gamma.scalar_type());
      state.invstd = invstd.to(gamma.scalar_type());
    } else {
      const Tensor mean = stats.mean.to(torch::kDouble);
      const Tensor var = stats.holds_invstd
                             ? stats.spread.to(torch::kDouble).pow(-2).sub_(stats.eps)
                             : stats.spread;
      if (training) update_running_stats(norm, mean, var, count);
      state.mean = mean.to(gamma.scalar_type());
      state.invstd = (var + eps).rsqrt().to(gamma.scalar_type());
    }
  } else {
    // Copies: the running statistics may change before backward runs.
    state.mean = norm.running_mean.clone();
    state.invstd = (norm.running_var + eps).sqrt().reciprocal();
  }
  state.scale = gamma * state.invstd;
  state.beta = beta;
  return state;
}

/// A contiguous (N, C, H, W) tensor over the front of `scratch`, a flat buffer shared by all
/// layers of the stage.
Tensor scratch_view(const Tensor& scratch, int64_t n, int64_t c, int64_t h, int64_t w) {
  TORCH_INTERNAL_ASSERT(n * c * h * w <= scratch.numel(), "scratch too small");
  return scratch.narrow(0, 0, n * c * h * w).view({n, c, h, w});
}

/// Backward of conv(relu(bn(x))) from the convolution's output gradient, where `activation`
/// holds relu(bn(x)) (recomputed by the caller). dx is added to *accumulate_into when given,
/// else returned in `input`. `chunks`: batch chunks of the CPU's convolution backward.
/// CPU: the convolution's input gradient overwrites `activation` (one buffer at the peak) and
/// the BN-ReLU kernel recomputes the ReLU mask from x. CUDA: cuDNN writes the input gradient to
/// a new buffer in any case (the batch runs whole, so that buffer is there at the peak either
/// way); `activation` stays and gives the ReLU mask, which saves recomputing the pre-activation
/// and copying the gradient back: three of the backward's passes over the layer input.
/// Under sync-bn (`sync`, training) the kernels form dx without the batch-statistics terms and
/// the terms of the global batch (`stat_count` values per channel) are added after one
/// all-reduce: an extra pass over x and dx, the price of sync-bn here.
template <typename GradOutputOf>
NormReluConvGrads norm_relu_conv_backward(GradOutputOf grad_output_of, Tensor activation,
                                          const Tensor& x, const NormState& norm,
                                          const Tensor& gamma, const Tensor& beta,
                                          const Tensor& weight, int64_t padding, bool training,
                                          Tensor* accumulate_into, const BatchNormAllReduce* sync,
                                          int64_t stat_count, int64_t chunks = kCpuChunks) {
  NormReluConvGrads grads;
  const bool accumulate = accumulate_into != nullptr;
  const bool synced = training && sync != nullptr;
  auto add_global_terms = [&](Tensor& grad_x) {
    if (!synced) return;
    auto [k1, k2] =
        all_reduce_norm_terms(*sync, grads.gamma, grads.beta, norm.scale, norm.invstd, stat_count);
    add_norm_terms(x, grad_x, norm.mean, k1, k2);
  };
  if (activation.is_cuda()) {
    auto [grad_activation, grad_weight] = conv2d_backward(
        grad_output_of(0, activation.size(0)), activation, weight, padding, /*input_grad=*/true);
    grads.conv_weight = grad_weight;
    Tensor& grad_x = accumulate ? *accumulate_into : grad_activation;
    std::tie(grads.gamma, grads.beta) = kernels::bn_relu_backward_given_output(
        grad_activation, activation, x, norm.mean, norm.invstd, gamma, training && !synced, grad_x,
        accumulate);
    add_global_terms(grad_x);
    if (!accumulate) grads.input = grad_activation;
    return grads;
  }
  grads.conv_weight =
      weight.size(2) == 1 && padding == 0
          ? pointwise_conv_backward_in_place(grad_output_of, activation, weight)
          : conv2d_backward_in_place(grad_output_of, activation, weight, padding, chunks);
  Tensor& grad_x = accumulate ? *accumulate_into : activation;  // activation now holds dA
  std::tie(grads.gamma, grads.beta) = kernels::bn_relu_backward(
      activation, x, norm.mean, norm.invstd, gamma, beta, training && !synced, grad_x, accumulate);
  add_global_terms(grad_x);
  if (!accumulate) grads.input = activation;
  return grads;
}

// ---------------------------------------------------------------------------------------------
// What the stage keeps between forward and backward

struct LayerState {
  NormState norm1;
  NormState norm2;      // BC layers only
  Tensor bottleneck;    // (N, B, H, W): conv1 output, kept in efficient mode (BC layers)
  Tensor dropout_mask;  // (N, k, H, W) bool: training with drop_rate > 0 only
};

/// Parameters of a stage in the order they are passed to (and returned from) the autograd op.
struct ParameterIndex {
  // Per layer: norm1.weight, norm1.bias, conv1.weight[, norm2.weight, norm2.bias, conv2.weight].
  int64_t per_layer = 0;
  int64_t tail_first = 0;  // tail norm weight, bias[, transition conv weight]
};

struct StageState : torch::CustomClassHolder {
  // Configuration
  DenseBlockImpl* block = nullptr;
  std::shared_ptr<TransitionImpl> transition;
  BatchNorm final_norm;
  StageTail tail = StageTail::kNone;
  bool training = false;
  bool minimal = false;
  ParameterIndex index;
  BatchNormAllReduce sync;  // sync-bn's all-reduce; empty without sync-bn
  int64_t stat_count = 0;   // values per channel of the batch statistics (global under sync-bn)

  // Kept for backward
  Tensor features;  // (N, C0 + L*k, H, W): block buffer F (an alias without history)
  uint32_t features_version = 0;
  std::vector<LayerState> layers;
  NormState tail_norm;  // kTransition, kFinal
};

std::vector<Tensor> stage_parameters(DenseBlockImpl& block, StageTail tail,
                                     const std::shared_ptr<TransitionImpl>& transition,
                                     const BatchNorm& final_norm, ParameterIndex* index) {
  std::vector<Tensor> params;
  for (auto& layer : block.layers) {
    params.push_back(layer->norm1->weight);
    params.push_back(layer->norm1->bias);
    params.push_back(layer->conv1->weight);
    if (layer->has_bottleneck()) {
      params.push_back(layer->norm2->weight);
      params.push_back(layer->norm2->bias);
      params.push_back(layer->conv2->weight);
    }
  }
  index->per_layer = block.options.bn_size() > 0 ? 6 : 3;
  index->tail_first = static_cast<int64_t>(params.size());
  if (tail == StageTail::kTransition) {
    params.push_back(transition->norm->weight);
    params.push_back(transition->norm->bias);
    params.push_back(transition->conv->weight);
  } else if (tail == StageTail::kFinal) {
    params.push_back(final_norm->weight);
    params.push_back(final_norm->bias);
  }
  return params;
}

/// The parameters as the stage's arithmetic takes them, in its dtype `dtype`: the convolution
/// weights (4-D) cast to it, as autocast casts a convolution's weight; the norms' weights and
/// biases (1-D) as they are (float32 under amp: the affine transform and every statistic are
/// computed in float32 or better). The casts are made per forward and per backward, never kept:
/// weights are small, and a kept copy would go stale at the optimiser's step.
std::vector<Tensor> compute_params(const std::vector<Tensor>& params, torch::ScalarType dtype) {
  std::vector<Tensor> result(params);
  for (Tensor& p : result) {
    if (p.dim() == 4 && p.scalar_type() != dtype) p = p.to(dtype);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Forward

/// Computes the stage. With `keep`, fills `state` with what backward needs.
Tensor stage_forward(StageState& state, const Tensor& input, const std::vector<Tensor>& parameters,
                     bool keep) {
  torch::NoGradGuard no_grad;
  // Every buffer of the stage is in its input's dtype (run_dense_stage chose it), and so are the
  // convolution weights its arithmetic reads.
  const std::vector<Tensor> params = compute_params(parameters, input.scalar_type());
  // Chunked convolutions may take ATen's im2col path, which runs GEMMs inside its own
  // parallel loop over samples.
  SingleThreadedBlas single_threaded_blas;
  DenseBlockImpl& block = *state.block;
  const int64_t n = input.size(0), c0 = input.size(1), h = input.size(2), w = input.size(3);
  const int64_t k = block.options.growth_rate();
  const int64_t num_layers = block.options.num_layers();
  const int64_t c_total = c0 + num_layers * k;
  const int64_t count = n * h * w;  // values per channel for batch statistics (this replica)
  const BatchNormAllReduce* sync = state.sync ? &state.sync : nullptr;
  const bool training = state.training;
  const bool bottleneck = block.options.bn_size() > 0;
  const double drop_rate = block.options.drop_rate();

  Tensor features = torch::empty({n, c_total, h, w}, input.options());  // (N, C0 + L*k, H, W)
  features.narrow(1, 0, c0).copy_(input);
  // Per-channel batch statistics of F, filled as channels are written: every layer's norm1
  // sees the same batch statistics for the channels it shares with earlier layers.
  ChannelStats feature_stats;  // (C0 + L*k,) each
  const double feature_eps = block.layers.empty() ? 1e-5 : block.layers[0]->norm1->options.eps();
  Tensor counts;  // CUDA: (1,) N*H*W, shared by every norm of the stage
  if (training && input.is_cuda()) {
    const auto stats_type = input.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    counts = torch::full({1}, static_cast<double>(count), input.options().dtype(stats_type));
  }
  if (training) {
    ChannelStats first = channel_stats(features.narrow(1, 0, c0), feature_eps, counts, sync);
    state.stat_count = first.count;
    feature_stats = first;
    feature_stats.mean = torch::empty({c_total}, first.mean.options());
    feature_stats.spread = torch::empty({c_total}, first.spread.options());
    feature_stats.mean.narrow(0, 0, c0).copy_(first.mean);
    feature_stats.spread.narrow(0, 0, c0).copy_(first.spread);
  }
  // On the CPU, BC layers and the transition form their BN-ReLU a sample at a time, fused with
  // their 1x1 convolutions (kernels/norm_relu_conv1x1.h), and never write it for the whole
  // batch: bc-100 batch 64, forward 480 -> 375 ms (per-sample GEMMs on cache-resident
  // activations beat oneDNN's whole-batch 1x1 convolution) and step peak 362 -> 344 MiB.
  // Shared BN-ReLU output of the widest layer input (or of F for the tail), made on first use.
  const int64_t widest = state.tail == StageTail::kNone ? c_total - k : c_total;
  Tensor scratch;  // (N, widest, H, W)
  auto normalized_buffer = [&](int64_t c) {
    if (!scratch.defined()) scratch = torch::empty({n * widest * h * w}, input.options());
    return scratch_view(scratch, n, c, h, w);  // (N, c, H, W)
  };

  if (keep) state.layers.assign(num_layers, LayerState{});
  for (int64_t l = 0; l < num_layers; ++l) {
    DenseLayerImpl& layer = *block.layers[l];
    const Tensor* p = &params[l * state.index.per_layer];
    const int64_t c_in = c0 + l * k;
    const Tensor prefix = features.narrow(1, 0, c_in);  // (N, C_l, H, W), a view of F
    NormState norm1 =
        prepare_norm(*layer.norm1, p[0], p[1], training,
                     training ? feature_stats.narrow(0, c_in) : ChannelStats(), prefix);
    const bool fused = bottleneck && kernels::norm_relu_conv1x1_supported(prefix, p[2]);
    Tensor normalized;  // (N, C_l, H, W), unless fused
    if (!fused) {
      normalized = normalized_buffer(c_in);
      kernels::bn_relu_forward(prefix, norm1.mean, norm1.scale, norm1.beta, normalized);
    }

    Tensor out;  // (N, k, H, W)
    NormState norm2;
    Tensor kept_bottleneck;
    if (bottleneck) {
      Tensor y1;  // (N, B, H, W)
      if (fused) {
        y1 = torch::empty({n, p[2].size(0), h, w}, input.options());
        kernels::norm_relu_conv1x1_forward(prefix, norm1.mean, norm1.scale, norm1.beta, p[2], y1);
      } else {
        y1 = conv2d(normalized, p[2], 0);
      }
      const ChannelStats stats2 =
          training ? channel_stats(y1, layer.norm2->options.eps(), counts, sync) : ChannelStats();
      norm2 = prepare_norm(*layer.norm2, p[3], p[4], training, stats2, y1);
      Tensor r2 = torch::empty_like(y1);  // (N, B, H, W)
      kernels::bn_relu_forward(y1, norm2.mean, norm2.scale, norm2.beta, r2);
      out = conv2d(r2, p[5], 1);
      if (keep && !state.minimal) kept_bottleneck = y1;
    } else {
      out = conv2d(normalized, p[2], 1);
    }

    Tensor mask;
    if (training && drop_rate > 0.0) {
      // The same draws and arithmetic as torch::dropout on CPU, so masks and values equal the
      // naive mode's for the same seed; the mask is kept as bytes, not as a float tensor.
      Tensor noise = torch::empty_like(out).bernoulli_(1.0 - drop_rate);
      if (keep) mask = noise.ne(0);
      noise.div_(1.0 - drop_rate);
      out.mul_(noise);
    }
    features.narrow(1, c_in, k).copy_(out);
    if (training) {
      const ChannelStats added = channel_stats(out, feature_eps, counts, sync);
      feature_stats.mean.narrow(0, c_in, k).copy_(added.mean);
      feature_stats.spread.narrow(0, c_in, k).copy_(added.spread);
    }
    if (keep) {
      state.layers[l] = LayerState{norm1, norm2, kept_bottleneck, mask};
    }
  }

  Tensor result;
  const Tensor* tail_params = params.data() + state.index.tail_first;
  if (state.tail == StageTail::kNone) {
    result = features;
  } else {
    torch::nn::BatchNorm2dImpl& norm =
        state.tail == StageTail::kTransition ? *state.transition->norm : *state.final_norm;
    NormState tail_norm =
        prepare_norm(norm, tail_params[0], tail_params[1], training, feature_stats, features);
    const Tensor& conv_weight = tail_params[2];  // transition only
    const bool fused = state.tail == StageTail::kTransition &&
                       kernels::norm_relu_conv1x1_supported(features, conv_weight);
    Tensor normalized;  // (N, C_L, H, W), unless fused
    if (!fused) {
      normalized = normalized_buffer(c_total);
      kernels::bn_relu_forward(features, tail_norm.mean, tail_norm.scale, tail_norm.beta,
                               normalized);
    }
    if (state.tail == StageTail::kTransition) {
      // Convolution before pooling, in the naive order, so that results agree to rounding
      // (pooling first would save 3/4 of the transition's multiply-adds but move ReLU kinks).
      // Chunk by chunk, so the unpooled convolution output exists one chunk at a time.
      const int64_t step = chunk_samples(features);
      for (int64_t start = 0; start < n; start += step) {
        const int64_t len = std::min(step, n - start);
        Tensor conv_out;  // (len, C_out, H, W)
        if (fused) {
          conv_out = torch::empty({len, conv_weight.size(0), h, w}, features.options());
          kernels::norm_relu_conv1x1_forward(features.narrow(0, start, len), tail_norm.mean,
                                             tail_norm.scale, tail_norm.beta, conv_weight,
                                             conv_out);
        } else {
          conv_out = conv2d(normalized.narrow(0, start, len), conv_weight, 0);
        }
        Tensor pooled = at::avg_pool2d(conv_out, {2, 2}, {2, 2});  // (len, C_out, H/2, W/2)
        if (!result.defined()) {
          result =
              torch::empty({n, pooled.size(1), pooled.size(2), pooled.size(3)}, pooled.options());
        }
        result.narrow(0, start, len).copy_(pooled);
      }
    } else {
      result = normalized.mean({2, 3});  // (N, C_L)
    }
    if (keep) state.tail_norm = tail_norm;
  }
  if (keep) {
    // A non-differentiable alias: when F is the op's output, keeping F itself would make a
    // reference cycle F -> grad_fn -> state -> F. The alias shares F's version counter.
    state.features = features.detach();
    state.features_version = features._version();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Backward

/// Returns the gradients of the input and of every parameter, in the op's input order.
variable_list stage_backward(StageState& state, const Tensor& grad_result,
                             const std::vector<Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  const std::vector<Tensor> params = compute_params(parameters, state.features.scalar_type());
  // Every GEMM of backward runs inside a parallel loop over samples: ours (1x1 convolutions,
  // oneDNN's, one thread each there by itself) or ATen's im2col path (small chunks of 3x3
  // convolutions: BLAS, made single-threaded here).
  SingleThreadedBlas single_threaded_blas;
  DenseBlockImpl& block = *state.block;
  const Tensor& features = state.features;  // (N, C_L, H, W)
  TORCH_CHECK(features._version() == state.features_version,
              "the output of an efficient dense block was modified in place before backward; "
              "clone it first, or use --memory naive");
  const int64_t n = features.size(0), c_total = features.size(1), h = features.size(2),
                w = features.size(3);
  const int64_t k = block.options.growth_rate();
  const int64_t num_layers = block.options.num_layers();
  const int64_t c0 = c_total - num_layers * k;
  const bool training = state.training;
  const bool bottleneck = block.options.bn_size() > 0;
  const double drop_rate = block.options.drop_rate();
  // Under sync-bn the kernels leave out the batch-statistics terms (kernel_training false) and
  // they are formed from sums over every replica instead.
  const BatchNormAllReduce* sync = training && state.sync ? &state.sync : nullptr;
  const bool kernel_training = training && sync == nullptr;
  auto global_terms = [&](const NormState& norm, const Tensor& grad_gamma,
                          const Tensor& grad_beta) {
    return all_reduce_norm_terms(*sync, grad_gamma, grad_beta, norm.scale, norm.invstd,
                                 state.stat_count);
  };
  std::vector<Tensor> grads(params.size());
  // dLoss/dF, (N, C_L, H, W). For a tail, the gradient of relu(norm(F)) is formed in this
  // buffer and turned into dF in place, so no second block-sized buffer exists at once.
  Tensor grad_features;
  // CPU: the fused BN-ReLU + 1x1 backward owes the batch-statistics terms of its norm to dF
  // until the next pass over those channels (kernels/norm_relu_conv1x1.h); a layer's output
  // channels are settled before they are read, the stage input's at the end. One pass over
  // the layer input fewer per BC layer.
  kernels::DeferredNormTerms owed(features.is_cpu() ? c_total : 0);
  auto settle = [&](int64_t first_channel, int64_t channels) {
    if (owed.channels() == 0) return;
    Tensor grad_channels = grad_features.narrow(1, first_channel, channels);
    kernels::apply_deferred_norm_terms(features.narrow(1, first_channel, channels), grad_channels,
                                       owed, first_channel);
  };
  const int64_t tail = state.index.tail_first;
  if (state.tail == StageTail::kNone) {
    grad_features = grad_result.clone(torch::MemoryFormat::Contiguous);
  } else {
    const NormState& norm = state.tail_norm;
    if (state.tail == StageTail::kTransition) {
      const Tensor& conv_weight = params[tail + 2];
      const int64_t c_out = conv_weight.size(0);
      // The convolution's output gradient is average-pool backward, which needs only the shape
      // of its input; formed a chunk (or a sample) at a time.
      const Tensor pool_input_shape =
          torch::empty({1, 1, 1, 1}, grad_result.options()).expand({1, c_out, h, w});
      auto grad_conv_of = [&](int64_t start, int64_t len) {
        return at::avg_pool2d_backward(grad_result.narrow(0, start, len),
                                       pool_input_shape.expand({len, c_out, h, w}), {2, 2}, {2, 2},
                                       {0, 0}, /*ceil_mode=*/false, /*count_include_pad=*/true,
                                       /*divisor_override=*/c10::nullopt);
      };
      if (kernels::norm_relu_conv1x1_supported(features, conv_weight)) {
        grad_features = torch::empty({n, c_total, h, w}, features.options());
        const kernels::NormReluConv1x1Grads tail_grads = kernels::norm_relu_conv1x1_backward(
            [&](int64_t i) { return grad_conv_of(i, 1)[0]; }, features, norm.mean, norm.invstd,
            params[tail], params[tail + 1], conv_weight, kernel_training, grad_features,
            /*accumulate=*/false, &owed);
        if (sync != nullptr) {
          auto [k1, k2] = global_terms(norm, tail_grads.gamma, tail_grads.beta);
          owe_norm_terms(owed, norm.mean, k1, k2);
        }
        grads[tail] = tail_grads.gamma;
        grads[tail + 1] = tail_grads.beta;
        grads[tail + 2] = tail_grads.weight;
      } else {
        // Buffers in backward are allocated when needed and released as soon as they are
        // used: the peak is then the largest set alive at once, not the sum of all of them.
        // The convolution's input gradient replaces the recomputed BN-ReLU output chunk by
        // chunk, and that buffer becomes dF.
        Tensor normalized = torch::empty({n, c_total, h, w}, features.options());
        kernels::bn_relu_forward(features, norm.mean, norm.scale, norm.beta, normalized);
        grads[tail + 2] = pointwise_conv_backward_in_place(grad_conv_of, normalized, conv_weight);
        grad_features = normalized;
        std::tie(grads[tail], grads[tail + 1]) = kernels::bn_relu_backward(
            grad_features, features, norm.mean, norm.invstd, params[tail], params[tail + 1],
            kernel_training, grad_features, /*accumulate=*/false);
        if (sync != nullptr) {
          auto [k1, k2] = global_terms(norm, grads[tail], grads[tail + 1]);
          add_norm_terms(features, grad_features, norm.mean, k1, k2);
        }
      }
    } else {
      grad_features = (grad_result / static_cast<double>(h * w))
                          .view({n, c_total, 1, 1})
                          .expand({n, c_total, h, w})
                          .contiguous();
      std::tie(grads[tail], grads[tail + 1]) = kernels::bn_relu_backward(
          grad_features, features, norm.mean, norm.invstd, params[tail], params[tail + 1],
          kernel_training, grad_features, /*accumulate=*/false);
      if (sync != nullptr) {
        auto [k1, k2] = global_terms(norm, grads[tail], grads[tail + 1]);
        add_norm_terms(features, grad_features, norm.mean, k1, k2);
      }
    }
  }

  // One buffer for every layer's recomputed input, sized for the widest (the first one
  // backward visits, so the peak is unchanged): a fresh block-sized tensor per layer would be
  // above glibc's mmap threshold and page-faulted and zeroed afresh each time. Made on first
  // use: layers whose BN-ReLU is fused with their 1x1 convolution do not need it.
  Tensor layer_scratch;  // (N, C_L - k, H, W)
  for (int64_t l = num_layers - 1; l >= 0; --l) {
    const LayerState& kept = state.layers[l];
    const int64_t first = l * state.index.per_layer;
    const Tensor* p = &params[first];
    const int64_t c_in = c0 + l * k;
    const Tensor prefix = features.narrow(1, 0, c_in);  // (N, C_l, H, W)

    // Gradient of this layer's output; complete now, since only later layers read it.
    settle(c_in, k);
    Tensor grad_out = grad_features.narrow(1, c_in, k);  // (N, k, H, W), a view of dF
    if (kept.dropout_mask.defined()) {
      grad_out = grad_out * kept.dropout_mask.to(grad_out.scalar_type()).div_(1.0 - drop_rate);
    }

    // Recompute the BN-ReLU of the layer input, unless the fused kernel forms it per sample.
    const bool fused = bottleneck && kernels::norm_relu_conv1x1_supported(prefix, p[2]);
    Tensor normalized;  // (N, C_l, H, W), unless fused
    if (!fused) {
      if (!layer_scratch.defined()) {
        layer_scratch = torch::empty({n * (c_total - k) * h * w}, features.options());
      }
      normalized = scratch_view(layer_scratch, n, c_in, h, w);
      kernels::bn_relu_forward(prefix, kept.norm1.mean, kept.norm1.scale, kept.norm1.beta,
                               normalized);
    }

    Tensor grad_prefix = grad_features.narrow(1, 0, c_in);  // (N, C_l, H, W), a view of dF
    auto grad_out_of = [&](int64_t start, int64_t len) { return grad_out.narrow(0, start, len); };
    NormReluConvGrads layer_grads;
    if (bottleneck) {
      Tensor y1 = kept.bottleneck;  // (N, B, H, W)
      if (!y1.defined() && fused) {
        y1 = torch::empty({n, p[2].size(0), h, w}, features.options());
        kernels::norm_relu_conv1x1_forward(prefix, kept.norm1.mean, kept.norm1.scale,
                                           kept.norm1.beta, p[2], y1);
      } else if (!y1.defined()) {
        y1 = conv2d_chunked(normalized, p[2], 0);
      }
      Tensor r2 = torch::empty_like(y1);  // (N, B, H, W)
      kernels::bn_relu_forward(y1, kept.norm2.mean, kept.norm2.scale, kept.norm2.beta, r2);
      const NormReluConvGrads grads2 = norm_relu_conv_backward(
          grad_out_of, std::move(r2), y1, kept.norm2, p[3], p[4], p[5],
          /*padding=*/1, training, /*accumulate_into=*/nullptr, sync, state.stat_count,
          state.minimal ? kCpuChunks : kCpuBottleneckChunks);
      grads[first + 5] = grads2.conv_weight;
      grads[first + 3] = grads2.gamma;
      grads[first + 4] = grads2.beta;
      y1.reset();
      const Tensor& grad_y1 = grads2.input;  // (N, B, H, W)
      if (fused) {
        const kernels::NormReluConv1x1Grads grads1 = kernels::norm_relu_conv1x1_backward(
            [&](int64_t i) { return grad_y1[i]; }, prefix, kept.norm1.mean, kept.norm1.invstd, p[0],
            p[1], p[2], kernel_training, grad_prefix, /*accumulate=*/true, &owed);
        if (sync != nullptr) {
          auto [k1, k2] = global_terms(kept.norm1, grads1.gamma, grads1.beta);
          owe_norm_terms(owed, kept.norm1.mean, k1, k2);
        }
        layer_grads.gamma = grads1.gamma;
        layer_grads.beta = grads1.beta;
        layer_grads.conv_weight = grads1.weight;
      } else {
        auto grad_y1_of = [&](int64_t start, int64_t len) { return grad_y1.narrow(0, start, len); };
        layer_grads = norm_relu_conv_backward(grad_y1_of, std::move(normalized), prefix, kept.norm1,
                                              p[0], p[1], p[2], /*padding=*/0, training,
                                              &grad_prefix, sync, state.stat_count);
      }
    } else {
      layer_grads = norm_relu_conv_backward(grad_out_of, std::move(normalized), prefix, kept.norm1,
                                            p[0], p[1], p[2], /*padding=*/1, training, &grad_prefix,
                                            sync, state.stat_count);
    }
    grads[first] = layer_grads.gamma;
    grads[first + 1] = layer_grads.beta;
    grads[first + 2] = layer_grads.conv_weight;
  }

  settle(0, c0);
  variable_list result;
  result.reserve(params.size() + 2);
  result.push_back(grad_features.narrow(1, 0, c0).contiguous());  // frees dF on return
  for (size_t i = 0; i < grads.size(); ++i) {
    // In the parameter's own dtype: float32 under amp (the master weights). The GEMMs' weight
    // gradients are float32 already; ATen's 16-bit convolutions give 16-bit ones.
    const torch::ScalarType type = parameters[i].scalar_type();
    result.push_back(grads[i].defined() && grads[i].scalar_type() != type ? grads[i].to(type)
                                                                          : grads[i]);
  }
  result.emplace_back();  // the state argument
  return result;
}

// ---------------------------------------------------------------------------------------------
// The autograd operation

struct DenseStageFunction : public torch::autograd::Function<DenseStageFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& input, at::TensorList params,
                        const c10::intrusive_ptr<StageState>& state) {
    std::vector<Tensor> param_list(params.begin(), params.end());
    Tensor result = stage_forward(*state, input, param_list, /*keep=*/true);
    ctx->save_for_backward(param_list);  // version-checked: an optimizer step before backward
                                         // is an error rather than wrong gradients
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return result;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "double backward (create_graph=True) is not supported by the efficient and "
                "minimal memory modes; use --memory naive");
    // As in forward (run_dense_stage): a backward called inside an autocast scope stays in the
    // stage's dtype, forward's choice (that of the buffers it kept).
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    auto state =
        c10::static_intrusive_pointer_cast<StageState>(ctx->saved_data["state"].toCapsule());
    std::vector<Tensor> params = ctx->get_saved_variables();
    Tensor grad = grad_outputs[0];
    if (!grad.defined()) grad = torch::zeros_like(state->features);
    variable_list grads = stage_backward(*state, grad, params);
    // Release what forward kept as soon as it is used: backward runs once.
    state->features.reset();
    state->layers.clear();
    return grads;
  }
};

/// stage_compute_dtype for this input and these parameters, under this thread's autocast state
/// for the input's device. Under amp the convolutions (ATen's, cuDNN's on CUDA) and the CPU's
/// GEMMs (oneDNN's, float32 sums) run in the 16-bit dtype on weights cast per call; batch
/// statistics, their sums and the norms' backward reductions are formed in float32 or double
/// (the CPU kernels, bn_relu.cu, ATen's batch_norm_stats); the parameters and their gradients
/// stay float32.
torch::ScalarType stage_dtype(const Tensor& input, const std::vector<Tensor>& params) {
  const std::optional<torch::ScalarType> param_type =
      params.empty() ? std::nullopt
                     : std::optional<torch::ScalarType>(params.front().scalar_type());
  return stage_compute_dtype(input.device().type(), input.scalar_type(), param_type,
                             autocast_dtype(input.device().type()));
}

}  // namespace

torch::ScalarType stage_compute_dtype(c10::DeviceType device, torch::ScalarType input,
                                      std::optional<torch::ScalarType> parameters,
                                      std::optional<torch::ScalarType> amp) {
  auto is_16_bit_type = [](torch::ScalarType t) {
    return t == torch::kBFloat16 || t == torch::kHalf;
  };
  if (!parameters || !c10::isFloatingType(*parameters)) return input;
  const bool stage_kernels = device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA;
  if (stage_kernels && *parameters == torch::kFloat && amp && is_16_bit_type(*amp)) return *amp;
  return is_16_bit_type(input) ? *parameters : input;
}

Tensor run_dense_stage(DenseBlockImpl& block, StageTail tail,
                       const std::shared_ptr<TransitionImpl>& transition,
                       const BatchNorm& final_norm, const Tensor& input) {
  TORCH_CHECK(block.options.memory() != MemoryMode::kNaive,
              "run_dense_stage is for the efficient and minimal memory modes");
  TORCH_INTERNAL_ASSERT(tail != StageTail::kTransition || transition, "transition missing");
  TORCH_INTERNAL_ASSERT(tail != StageTail::kFinal || final_norm, "final norm missing");
  auto state = c10::make_intrusive<StageState>();
  state->block = &block;
  state->transition = transition;
  state->final_norm = final_norm;
  state->tail = tail;
  state->training = block.is_training();
  state->minimal = block.options.memory() == MemoryMode::kMinimal;
  if (const BatchNormAllReduce* sync = current_batch_norm_sync(); sync && state->training) {
    state->sync = *sync;
  }
  std::vector<Tensor> params = stage_parameters(block, tail, transition, final_norm, &state->index);

  // Mixed precision (amp): see stage_dtype. Asked before autocast is turned off below (its state
  // is read from the same dispatch keys); the input is converted once, and autograd converts its
  // gradient back.
  const torch::ScalarType dtype = stage_dtype(input, params);
  const Tensor stage_input = input.scalar_type() == dtype ? input : input.to(dtype);
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);

  bool needs_grad = torch::GradMode::is_enabled() && stage_input.requires_grad();
  for (const auto& p : params)
    needs_grad = needs_grad || (torch::GradMode::is_enabled() && p.requires_grad());
  if (!needs_grad) return stage_forward(*state, stage_input, params, /*keep=*/false);
  return DenseStageFunction::apply(stage_input, at::TensorList(params), state);
}

}  // namespace densenet::detail

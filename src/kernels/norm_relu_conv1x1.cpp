#include "kernels/norm_relu_conv1x1.h"

#include "kernels/channel_relu.h"
#include "kernels/gemm.h"
#include "kernels/sixteen_bit.h"
#include "util/parallel.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace densenet::kernels {

namespace {

using detail::ChannelRelu;
using detail::compute_t;
using detail::for_each_block;
using detail::grain_for;
using detail::is_sixteen_bit_v;
using detail::kLanes;
using detail::kSixteenBitBlock;
using detail::plane_bn_relu;

// Deferred batch-statistics terms of one channel, in T: offset + (x - mean) * slope.
template <typename T>
struct PendingTerms {
  T offset = 0, mean = 0, slope = 0;
};

// dz = da where the ReLU was active; adds sum dz and sum dz * (x - mean) to the channel's sums
// (lanes in T, the plane's total in double, as bn_relu_backward) and writes or adds
// scale * dz, plus the channel's pending terms, to grad_x.
// da is in T (float32 for 16-bit data: the GEMM's float32 result, not rounded).
template <typename S, bool kAccumulate, typename T = compute_t<S>>
DENSENET_MULTIVERSION void plane_scaled_dz_and_sums(const T* da, const S* x, S* grad_x, int64_t n,
                                                    ChannelRelu<T> relu, PendingTerms<T> pending,
                                                    double* sum_dz, double* sum_dz_xc) {
  if constexpr (is_sixteen_bit_v<S>) {  // each block's sums added in double
    float x_block[kSixteenBitBlock], dx_block[kSixteenBitBlock];
    for_each_block(n, [&](int64_t start, int64_t len) {
      detail::widen(x + start, x_block, len);
      if constexpr (kAccumulate) detail::widen(grad_x + start, dx_block, len);
      plane_scaled_dz_and_sums<float, kAccumulate>(da + start, x_block, dx_block, len, relu,
                                                   pending, sum_dz, sum_dz_xc);
      detail::narrow(dx_block, grad_x + start, len);
    });
  } else {
    T lanes_dz[kLanes] = {};
    T lanes_dz_xc[kLanes] = {};
    auto step = [&](int64_t i, T& acc_dz, T& acc_dz_xc) {
      const T v = x[i];
      const T g = da[i];  // loaded unconditionally: a select, not a branch
      const T dz = relu.active(v) ? g : T(0);
      acc_dz += dz;
      acc_dz_xc += dz * (v - relu.mean);
      const T dx = relu.scale * dz + (pending.offset + (v - pending.mean) * pending.slope);
      if constexpr (kAccumulate) {
        grad_x[i] += dx;
      } else {
        grad_x[i] = dx;
      }
    };
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) step(i + j, lanes_dz[j], lanes_dz_xc[j]);
    }
    T tail_dz = 0, tail_dz_xc = 0;
    for (; i < n; ++i) step(i, tail_dz, tail_dz_xc);
    double s1 = static_cast<double>(tail_dz), s2 = static_cast<double>(tail_dz_xc);
    for (int j = 0; j < kLanes; ++j) {
      s1 += static_cast<double>(lanes_dz[j]);
      s2 += static_cast<double>(lanes_dz_xc[j]);
    }
    *sum_dz += s1;
    *sum_dz_xc += s2;
  }
}

// grad_x += k1 + (x - mean) * k2: the batch-statistics terms of the norm's input gradient.
template <typename S, typename T = compute_t<S>>
DENSENET_MULTIVERSION void plane_add_statistics_terms(const S* x, S* grad_x, int64_t n, T mean,
                                                      T k1, T k2) {
  if constexpr (is_sixteen_bit_v<S>) {
    float x_block[kSixteenBitBlock], dx_block[kSixteenBitBlock];
    for_each_block(n, [&](int64_t start, int64_t len) {
      detail::widen(x + start, x_block, len);
      detail::widen(grad_x + start, dx_block, len);
      plane_add_statistics_terms<float>(x_block, dx_block, len, mean, k1, k2);
      detail::narrow(dx_block, grad_x + start, len);
    });
  } else {
    for (int64_t i = 0; i < n; ++i) grad_x[i] += k1 + (x[i] - mean) * k2;
  }
}

// Data the kernels take: CPU, float, double or 16-bit, contiguous planes.
bool cpu_kernel_planes(const torch::Tensor& t) {
  return t.device().is_cpu() && detail::kernel_dtype(t.scalar_type()) &&
         detail::has_contiguous_planes(t);
}

// The per-thread BN-ReLU buffer holds a sample's whole (C, H*W) when it is at most this size,
// else a tile of its columns (at least 64, so the GEMMs stay wide). Whole planes are fastest:
// L2-sized tiles (256 KiB) made bc-100's minimal step 6% slower (2.30 vs 2.18 s, batch 64,
// same run); tiles only bound the buffer for large images.
constexpr int64_t kTileBytes = 4 << 20;

int64_t column_tile(int64_t channels, int64_t plane, int64_t element_size) {
  const int64_t fit = kTileBytes / std::max<int64_t>(1, channels * element_size);
  if (fit >= plane) return plane;
  return std::min(plane, std::max<int64_t>(64, fit / 64 * 64));
}

template <typename T>
std::vector<ChannelRelu<T>> channel_relus(const T* mean, const T* scale, const T* beta,
                                          int64_t channels) {
  std::vector<ChannelRelu<T>> relus;
  relus.reserve(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) relus.emplace_back(mean[c], scale[c], beta[c]);
  return relus;
}

}  // namespace

bool norm_relu_conv1x1_supported(const torch::Tensor& x, const torch::Tensor& weight) {
  return cpu_kernel_planes(x) && weight.device().is_cpu() &&
         weight.scalar_type() == x.scalar_type() && weight.dim() == 4 &&
         weight.size(1) == x.size(1) && weight.size(2) == 1 && weight.size(3) == 1 &&
         weight.is_contiguous();
}

void norm_relu_conv1x1_forward(const torch::Tensor& x, const torch::Tensor& mean,
                               const torch::Tensor& scale, const torch::Tensor& beta,
                               const torch::Tensor& weight, torch::Tensor& out) {
  RECORD_USER_SCOPE("densenet::norm_relu_conv1x1_forward");
  TORCH_INTERNAL_ASSERT(norm_relu_conv1x1_supported(x, weight), "norm_relu_conv1x1_forward: x ",
                        x.sizes(), ", weight ", weight.sizes());
  const int64_t n = x.size(0), c = x.size(1), plane = x.size(2) * x.size(3);
  const int64_t b = weight.size(0);
  TORCH_INTERNAL_ASSERT(
      out.is_contiguous() && out.sizes() == torch::IntArrayRef({n, b, x.size(2), x.size(3)}),
      "norm_relu_conv1x1_forward: out ", out.sizes());
  const torch::Tensor w = weight.view({b, c});  // (B, C)
  const torch::Tensor m = mean.contiguous(), s = scale.contiguous(), bt = beta.contiguous();
  TORCH_INTERNAL_ASSERT(m.scalar_type() == detail::compute_dtype(x.scalar_type()),
                        "norm_relu_conv1x1_forward: statistics in ", m.scalar_type(), " for ",
                        x.scalar_type(), " data");
  AT_DISPATCH_FLOATING_TYPES_AND2(
      torch::kBFloat16, torch::kHalf, x.scalar_type(), "norm_relu_conv1x1_forward", [&] {
        using S = scalar_t;  // the data's dtype; A (the GEMM's input) is stored in it too
        using T = compute_t<S>;
        const auto relus = channel_relus(m.data_ptr<T>(), s.data_ptr<T>(), bt.data_ptr<T>(), c);
        const S* in = x.data_ptr<S>();
        const int64_t batch_stride = x.stride(0), channel_stride = x.stride(1);
        const int64_t tile = column_tile(c, plane, static_cast<int64_t>(sizeof(S)));
        densenet::detail::parallel_for_with_state(
            0, n, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
              torch::Tensor buffer =
                  torch::empty({c * tile}, x.options());  // (C, tile), this thread's
              S* a = buffer.data_ptr<S>();
              for (int64_t i = begin; i < end; ++i) {
                const torch::Tensor out_i = out[i].view({b, plane});  // (B, HW)
                for (int64_t first = 0; first < plane; first += tile) {
                  const int64_t len = std::min(tile, plane - first);
                  for (int64_t ch = 0; ch < c; ++ch) {
                    plane_bn_relu(in + i * batch_stride + ch * channel_stride + first, a + ch * len,
                                  len, relus[static_cast<size_t>(ch)]);
                  }
                  torch::Tensor out_columns =
                      out_i.narrow(1, first, len);  // (B, len), row stride HW
                  gemm(w, buffer.narrow(0, 0, c * len).view({c, len}), out_columns);
                }
              }
            });
      });
}

NormReluConv1x1Grads norm_relu_conv1x1_backward(
    const std::function<torch::Tensor(int64_t)>& grad_output_of, const torch::Tensor& x,
    const torch::Tensor& mean, const torch::Tensor& invstd, const torch::Tensor& gamma,
    const torch::Tensor& beta, const torch::Tensor& weight, bool training, torch::Tensor& grad_x,
    bool accumulate, DeferredNormTerms* deferred) {
  RECORD_USER_SCOPE("densenet::norm_relu_conv1x1_backward");
  TORCH_INTERNAL_ASSERT(norm_relu_conv1x1_supported(x, weight) && cpu_kernel_planes(grad_x) &&
                            grad_x.sizes() == x.sizes() && grad_x.scalar_type() == x.scalar_type(),
                        "norm_relu_conv1x1_backward: x ", x.sizes(), ", weight ", weight.sizes(),
                        ", grad_x ", grad_x.sizes());
  const int64_t n = x.size(0), c = x.size(1), plane = x.size(2) * x.size(3);
  TORCH_INTERNAL_ASSERT(deferred == nullptr || deferred->channels() >= c,
                        "norm_relu_conv1x1_backward: deferred terms for too few channels");
  const int64_t b = weight.size(0);
  const torch::Tensor w = weight.view({b, c});  // (B, C)
  const torch::Tensor m = mean.contiguous(), is = invstd.contiguous(), g = gamma.contiguous(),
                      bt = beta.contiguous();
  // One partial dW and one pair of channel sums per worker thread, summed in thread order:
  // each thread takes a fixed range of samples, so results do not depend on timing.
  const int64_t workers = densenet::detail::max_parallel_threads();
  // dW^T (C, B) rather than dW: OpenBLAS ran A dY^T 25-35% faster than dY A^T on these shapes
  // (C ~ 100-300, B = 48, 1024 columns: 85 vs 63 GFLOP/s on one core); not re-measured with
  // oneDNN.
  // (T, C, B), float32 for 16-bit data (the GEMM's sums; one rounding, by the caller, if any).
  torch::Tensor partial_grad_w_t =
      torch::zeros({workers, c, b}, x.options().dtype(detail::compute_dtype(x.scalar_type())));
  std::vector<double> partial_sums(static_cast<size_t>(workers * 2 * c), 0.0);  // (T, 2, C)
  NormReluConv1x1Grads grads;
  grads.gamma = torch::empty_like(gamma);
  grads.beta = torch::empty_like(beta);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      torch::kBFloat16, torch::kHalf, x.scalar_type(), "norm_relu_conv1x1_backward", [&] {
        using S = scalar_t;  // the data's dtype
        using T = compute_t<S>;
        constexpr bool kSplit = !std::is_same_v<S, T>;  // dA in its own float32 buffer
        const T* mp = m.data_ptr<T>();
        const T* isp = is.data_ptr<T>();
        const T* gp = g.data_ptr<T>();
        const T* bp = bt.data_ptr<T>();
        // scale = gamma * invstd in T: the same expression as the forward's (NormState::scale), so
        // the ReLU mask is the forward's.
        std::vector<T> scale(static_cast<size_t>(c));
        for (int64_t ch = 0; ch < c; ++ch) scale[static_cast<size_t>(ch)] = gp[ch] * isp[ch];
        const auto relus = channel_relus(mp, scale.data(), bp, c);
        // Terms deferred by earlier calls are added in this pass, and taken off the books.
        std::vector<PendingTerms<T>> pending(static_cast<size_t>(c));
        if (deferred != nullptr) {
          for (int64_t ch = 0; ch < c; ++ch) {
            const size_t j = static_cast<size_t>(ch);
            pending[j] = {static_cast<T>(deferred->offset[j]), static_cast<T>(deferred->mean[j]),
                          static_cast<T>(deferred->slope[j])};
            deferred->offset[j] = deferred->slope[j] = 0.0;
          }
        }
        const S* in = x.data_ptr<S>();
        S* gx = grad_x.data_ptr<S>();
        const int64_t x_batch = x.stride(0), x_channel = x.stride(1);
        const int64_t gx_batch = grad_x.stride(0), gx_channel = grad_x.stride(1);

        const int64_t tile =
            column_tile(c, plane, static_cast<int64_t>(kSplit ? sizeof(S) + sizeof(T) : sizeof(T)));
        densenet::detail::parallel_for_with_state(
            0, n, /*grain_size=*/1, [&](int64_t begin, int64_t end) {
              const int64_t thread = at::get_thread_num();
              torch::Tensor grad_w_t = partial_grad_w_t[thread];      // (C, B)
              double* sum_dz = partial_sums.data() + thread * 2 * c;  // (C,)
              double* sum_dz_xc = sum_dz + c;                         // (C,)
              torch::Tensor buffer =
                  torch::empty({c * tile}, x.options());  // (C, tile): A, then dA
              S* a = buffer.data_ptr<S>();
              // 16-bit data: dA (C, tile) in float32, the GEMM's sums unrounded; else A's buffer.
              torch::Tensor da_buffer =
                  kSplit
                      ? torch::empty({c * tile}, x.options().dtype(partial_grad_w_t.scalar_type()))
                      : buffer;
              T* da = da_buffer.data_ptr<T>();
              for (int64_t i = begin; i < end; ++i) {
                const S* x_i = in + i * x_batch;
                S* gx_i = gx + i * gx_batch;
                const torch::Tensor dy =
                    grad_output_of(i).reshape({b, plane}).contiguous();  // (B, HW)
                for (int64_t first = 0; first < plane; first += tile) {
                  const int64_t len = std::min(tile, plane - first);
                  torch::Tensor activation = buffer.narrow(0, 0, c * len).view({c, len});
                  for (int64_t ch = 0; ch < c; ++ch) {
                    plane_bn_relu(x_i + ch * x_channel + first, a + ch * len, len,
                                  relus[static_cast<size_t>(ch)]);
                  }
                  const torch::Tensor dy_columns = dy.narrow(1, first, len);  // (B, len)
                  gemm(activation, dy_columns.t(), grad_w_t, /*beta=*/1.0f);  // dW^T += A dY^T
                  torch::Tensor grad_activation = da_buffer.narrow(0, 0, c * len).view({c, len});
                  gemm(w.t(), dy_columns, grad_activation);  // dA = W^T dY, (C, len)
                  for (int64_t ch = 0; ch < c; ++ch) {
                    const ChannelRelu<T>& relu = relus[static_cast<size_t>(ch)];
                    const S* x_row = x_i + ch * x_channel + first;
                    S* gx_row = gx_i + ch * gx_channel + first;
                    const PendingTerms<T> terms = pending[static_cast<size_t>(ch)];
                    if (accumulate) {
                      plane_scaled_dz_and_sums<S, true>(da + ch * len, x_row, gx_row, len, relu,
                                                        terms, &sum_dz[ch], &sum_dz_xc[ch]);
                    } else {
                      plane_scaled_dz_and_sums<S, false>(da + ch * len, x_row, gx_row, len, relu,
                                                         terms, &sum_dz[ch], &sum_dz_xc[ch]);
                    }
                  }
                }
              }
            });

        T* dg = grads.gamma.data_ptr<T>();
        T* db = grads.beta.data_ptr<T>();
        const double count = static_cast<double>(n * plane);
        std::vector<double> k1(static_cast<size_t>(c)), k2(static_cast<size_t>(c));
        for (int64_t ch = 0; ch < c; ++ch) {
          double s1 = 0, s2 = 0;
          for (int64_t t = 0; t < workers; ++t) {
            s1 += partial_sums[static_cast<size_t>(t * 2 * c + ch)];
            s2 += partial_sums[static_cast<size_t>(t * 2 * c + c + ch)];
          }
          const double scale = static_cast<double>(relus[static_cast<size_t>(ch)].scale);
          const double inv = static_cast<double>(isp[ch]);
          dg[ch] = static_cast<T>(s2 * inv);
          db[ch] = static_cast<T>(s1);
          k1[static_cast<size_t>(ch)] = -scale * s1 / count;
          k2[static_cast<size_t>(ch)] = -scale * inv * inv * s2 / count;
        }
        if (training && deferred != nullptr) {
          // This norm's batch-statistics terms wait for the next pass over these channels.
          for (int64_t ch = 0; ch < c; ++ch) {
            const size_t j = static_cast<size_t>(ch);
            deferred->offset[j] = k1[j];
            deferred->slope[j] = k2[j];
            deferred->mean[j] = static_cast<double>(mp[ch]);
          }
        } else if (training) {
          at::parallel_for(0, n * c, grain_for(plane), [&](int64_t begin, int64_t end) {
            for (int64_t item = begin; item < end; ++item) {
              const int64_t i = item / c, ch = item % c;
              const size_t j = static_cast<size_t>(ch);
              plane_add_statistics_terms(in + i * x_batch + ch * x_channel,
                                         gx + i * gx_batch + ch * gx_channel, plane, mp[ch],
                                         static_cast<T>(k1[j]), static_cast<T>(k2[j]));
            }
          });
        }
      });
  grads.weight = partial_grad_w_t.sum(0).t().contiguous().view_as(weight);
  return grads;
}

DeferredNormTerms::DeferredNormTerms(int64_t channels)
    : offset(static_cast<size_t>(channels), 0.0),
      slope(static_cast<size_t>(channels), 0.0),
      mean(static_cast<size_t>(channels), 0.0) {}

void apply_deferred_norm_terms(const torch::Tensor& x, torch::Tensor& grad_x,
                               DeferredNormTerms& deferred, int64_t first_channel) {
  RECORD_USER_SCOPE("densenet::apply_deferred_norm_terms");
  const int64_t c = x.size(1);
  TORCH_INTERNAL_ASSERT(first_channel >= 0 && first_channel + c <= deferred.channels(),
                        "apply_deferred_norm_terms: channels ", first_channel, "+", c, " of ",
                        deferred.channels());
  bool any = false;  // only the fused kernel owes terms, so other layouts and dtypes owe none
  for (int64_t ch = 0; ch < c; ++ch) {
    const size_t j = static_cast<size_t>(first_channel + ch);
    any = any || deferred.offset[j] != 0.0 || deferred.slope[j] != 0.0;
  }
  if (!any) return;
  TORCH_INTERNAL_ASSERT(cpu_kernel_planes(x) && cpu_kernel_planes(grad_x) &&
                            x.sizes() == grad_x.sizes() && x.scalar_type() == grad_x.scalar_type(),
                        "apply_deferred_norm_terms: x ", x.sizes(), ", grad_x ", grad_x.sizes());
  const int64_t n = x.size(0), plane = x.size(2) * x.size(3);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      torch::kBFloat16, torch::kHalf, x.scalar_type(), "apply_deferred_norm_terms", [&] {
        using S = scalar_t;
        using T = compute_t<S>;
        const S* in = x.data_ptr<S>();
        S* gx = grad_x.data_ptr<S>();
        at::parallel_for(0, n * c, grain_for(plane), [&](int64_t begin, int64_t end) {
          for (int64_t item = begin; item < end; ++item) {
            const int64_t i = item / c, ch = item % c;
            const size_t j = static_cast<size_t>(first_channel + ch);
            plane_add_statistics_terms(in + i * x.stride(0) + ch * x.stride(1),
                                       gx + i * grad_x.stride(0) + ch * grad_x.stride(1), plane,
                                       static_cast<T>(deferred.mean[j]),
                                       static_cast<T>(deferred.offset[j]),
                                       static_cast<T>(deferred.slope[j]));
          }
        });
      });
  for (int64_t ch = 0; ch < c; ++ch) {
    const size_t j = static_cast<size_t>(first_channel + ch);
    deferred.offset[j] = deferred.slope[j] = 0.0;
  }
}

}  // namespace densenet::kernels

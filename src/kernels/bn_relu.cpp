#include "kernels/bn_relu.h"
#include "kernels/bn_relu_cuda.h"
#include "kernels/channel_relu.h"
#include "kernels/sixteen_bit.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace densenet::kernels {

namespace {

using detail::ChannelRelu;
using detail::compute_t;
using detail::for_each_block;
using detail::grain_for;
using detail::has_contiguous_planes;
using detail::is_sixteen_bit_v;
using detail::kLanes;
using detail::kSixteenBitBlock;
using detail::plane_bn_relu;

// Whether bn_relu.cu is compiled in (nvcc and a CUDA LibTorch; CMake's DENSENET_CUDA_KERNELS).
// Without it the cuda:: kernels are declared but not defined, and are named only in discarded
// `if constexpr` branches, which need no definition.
#ifdef DENSENET_CUDA_KERNELS
constexpr bool kCudaKernels = true;
#else
constexpr bool kCudaKernels = false;
#endif

template <typename T>
DENSENET_MULTIVERSION double plane_sum(const T* x, int64_t n) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += static_cast<double>(x[i + j]);
  }
  double sum = 0;
  for (; i < n; ++i) sum += static_cast<double>(x[i]);
  for (int j = 0; j < kLanes; ++j) sum += lanes[j];
  return sum;
}

template <typename T>
DENSENET_MULTIVERSION double plane_squared_deviation(const T* x, int64_t n, double mean) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const double d = static_cast<double>(x[i + j]) - mean;
      lanes[j] += d * d;
    }
  }
  double sum = 0;
  for (; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - mean;
    sum += d * d;
  }
  for (int j = 0; j < kLanes; ++j) sum += lanes[j];
  return sum;
}

// Sums of dz and dz * (x - mean) over one plane, dz = grad_y where the ReLU was active; lanes
// in T, each plane's (a 16-bit plane's: each block's) total added in double.
template <typename S, typename T = compute_t<S>>
DENSENET_MULTIVERSION void plane_backward_sums(const S* grad_y, const S* x, int64_t n,
                                               ChannelRelu<T> relu, double* sum_dz,
                                               double* sum_dz_xc) {
  if constexpr (is_sixteen_bit_v<S>) {
    float g_block[kSixteenBitBlock], x_block[kSixteenBitBlock];
    for_each_block(n, [&](int64_t start, int64_t len) {
      detail::widen(grad_y + start, g_block, len);
      detail::widen(x + start, x_block, len);
      plane_backward_sums<float>(g_block, x_block, len, relu, sum_dz, sum_dz_xc);
    });
  } else {
    T lanes_dz[kLanes] = {};
    T lanes_dz_xc[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) {
        const T v = x[i + j];
        const T g = grad_y[i + j];  // loaded unconditionally: a select, not a branch
        const T dz = relu.active(v) ? g : T(0);
        lanes_dz[j] += dz;
        lanes_dz_xc[j] += dz * (v - relu.mean);
      }
    }
    double s1 = 0, s2 = 0;
    for (; i < n; ++i) {
      const T v = x[i];
      const T dz = relu.active(v) ? grad_y[i] : T(0);
      s1 += static_cast<double>(dz);
      s2 += static_cast<double>(dz) * static_cast<double>(v - relu.mean);
    }
    for (int j = 0; j < kLanes; ++j) {
      s1 += static_cast<double>(lanes_dz[j]);
      s2 += static_cast<double>(lanes_dz_xc[j]);
    }
    *sum_dz += s1;
    *sum_dz_xc += s2;
  }
}

// dx = scale * dz + k1 + (x - mean) * k2, written or added to grad_x (which may be grad_y); a
// 16-bit grad_x is rounded once, after the addition.
template <typename S, bool kAccumulate, typename T = compute_t<S>>
DENSENET_MULTIVERSION void plane_backward_dx(const S* grad_y, const S* x, S* grad_x, int64_t n,
                                             ChannelRelu<T> relu, T k1, T k2) {
  if constexpr (is_sixteen_bit_v<S>) {
    float g_block[kSixteenBitBlock], x_block[kSixteenBitBlock], dx_block[kSixteenBitBlock];
    for_each_block(n, [&](int64_t start, int64_t len) {
      // grad_y's block is read before grad_x's is written: they may be the same memory.
      detail::widen(grad_y + start, g_block, len);
      detail::widen(x + start, x_block, len);
      if constexpr (kAccumulate) detail::widen(grad_x + start, dx_block, len);
      plane_backward_dx<float, kAccumulate>(g_block, x_block, dx_block, len, relu, k1, k2);
      detail::narrow(dx_block, grad_x + start, len);
    });
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const T v = x[i];
      const T g = grad_y[i];
      const T dz = relu.active(v) ? g : T(0);
      const T dx = relu.scale * dz + k1 + (v - relu.mean) * k2;
      if constexpr (kAccumulate) {
        grad_x[i] += dx;
      } else {
        grad_x[i] = dx;
      }
    }
  }
}

// Planes of H*W elements, contiguous each; batch and channel strides arbitrary.
struct PlaneLayout {
  int64_t batch, channels, plane, batch_stride, channel_stride;
};

PlaneLayout layout_of(const torch::Tensor& t) {
  return {t.size(0), t.size(1), t.size(2) * t.size(3), t.stride(0), t.stride(1)};
}

/// Whether the CPU kernels take these tensors: the first is (N, C, H, W) data of a kernel dtype;
/// every 4-D tensor has its dtype and contiguous planes; every 1-D one (per-channel parameters)
/// is contiguous, in the dtype the data is computed in (float32 for 16-bit data).
bool use_cpu_kernel(std::initializer_list<const torch::Tensor*> tensors) {
  const torch::Tensor& first = **tensors.begin();
  if (!first.device().is_cpu()) return false;
  const auto type = first.scalar_type();
  if (!detail::kernel_dtype(type)) return false;
  for (const torch::Tensor* t : tensors) {
    if (!t->device().is_cpu()) return false;
    if (t->dim() == 4 && (t->scalar_type() != type || !has_contiguous_planes(*t))) return false;
    if (t->dim() == 1 && (t->scalar_type() != detail::compute_dtype(type) || !t->is_contiguous())) {
      return false;
    }
  }
  return true;
}

torch::Tensor per_channel(const torch::Tensor& v) {
  return v.view({1, -1, 1, 1});
}

/// grad_x += dx, or grad_x = dx.
void write_gradient(torch::Tensor& grad_x, const torch::Tensor& dx, bool accumulate) {
  if (accumulate) {
    grad_x.add_(dx);
  } else {
    grad_x.copy_(dx);
  }
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x) {
  RECORD_USER_SCOPE("densenet::channel_mean_var");
  TORCH_INTERNAL_ASSERT(x.dim() == 4, "channel_mean_var expects (N, C, H, W), got ", x.sizes());
  if (x.is_cuda()) return aten_cuda::channel_mean_var(x);
  if (!use_cpu_kernel({&x})) return reference::channel_mean_var(x);
  const PlaneLayout s = layout_of(x);
  torch::Tensor mean = torch::empty({s.channels}, x.options().dtype(torch::kDouble));
  torch::Tensor var = torch::empty({s.channels}, x.options().dtype(torch::kDouble));
  const double count = static_cast<double>(s.batch * s.plane);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      torch::kBFloat16, torch::kHalf, x.scalar_type(), "channel_mean_var", [&] {
        const scalar_t* data = x.data_ptr<scalar_t>();
        double* mean_data = mean.data_ptr<double>();
        double* var_data = var.data_ptr<double>();
        at::parallel_for(
            0, s.channels, grain_for(s.batch * s.plane), [&](int64_t begin, int64_t end) {
              for (int64_t c = begin; c < end; ++c) {
                double sum = 0;
                for (int64_t n = 0; n < s.batch; ++n) {
                  sum += plane_sum(data + n * s.batch_stride + c * s.channel_stride, s.plane);
                }
                const double m = sum / count;
                double squares = 0;
                for (int64_t n = 0; n < s.batch; ++n) {
                  squares += plane_squared_deviation(
                      data + n * s.batch_stride + c * s.channel_stride, s.plane, m);
                }
                mean_data[c] = m;
                var_data[c] = squares / count;
              }
            });
      });
  return {mean, var};
}

void bn_relu_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out) {
  RECORD_USER_SCOPE("densenet::bn_relu_forward");
  TORCH_INTERNAL_ASSERT(x.dim() == 4 && out.sizes() == x.sizes() && out.is_contiguous(),
                        "bn_relu_forward: x ", x.sizes(), ", out ", out.sizes());
  if (x.is_cuda()) {
    if constexpr (kCudaKernels) {
      if (cuda::takes({&x, &mean, &scale, &beta, &out})) {
        cuda::bn_relu_forward(x, mean, scale, beta, out);
        return;
      }
    }
    aten_cuda::bn_relu_forward(x, mean, scale, beta, out);
    return;
  }
  if (!use_cpu_kernel({&x, &mean, &scale, &beta, &out})) {
    reference::bn_relu_forward(x, mean, scale, beta, out);
    return;
  }
  const PlaneLayout s = layout_of(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      torch::kBFloat16, torch::kHalf, x.scalar_type(), "bn_relu_forward", [&] {
        using T = compute_t<scalar_t>;
        const scalar_t* in = x.data_ptr<scalar_t>();
        scalar_t* o = out.data_ptr<scalar_t>();
        const T* m = mean.data_ptr<T>();
        const T* a = scale.data_ptr<T>();
        const T* b = beta.data_ptr<T>();
        std::vector<ChannelRelu<T>> relus;
        relus.reserve(static_cast<size_t>(s.channels));
        for (int64_t c = 0; c < s.channels; ++c) relus.emplace_back(m[c], a[c], b[c]);
        at::parallel_for(0, s.batch * s.channels, grain_for(s.plane),
                         [&](int64_t begin, int64_t end) {
                           for (int64_t i = begin; i < end; ++i) {
                             const int64_t n = i / s.channels;
                             const int64_t c = i % s.channels;
                             plane_bn_relu(in + n * s.batch_stride + c * s.channel_stride,
                                           o + i * s.plane, s.plane, relus[c]);
                           }
                         });
      });
}

std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward(
    const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
    const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
    bool training, torch::Tensor& grad_x, bool accumulate) {
  RECORD_USER_SCOPE("densenet::bn_relu_backward");
  TORCH_INTERNAL_ASSERT(x.dim() == 4 && grad_y.sizes() == x.sizes() && grad_x.sizes() == x.sizes(),
                        "bn_relu_backward: grad_y ", grad_y.sizes(), ", x ", x.sizes(), ", grad_x ",
                        grad_x.sizes());
  if (x.is_cuda()) {
    if constexpr (kCudaKernels) {
      if (cuda::takes({&grad_y, &x, &mean, &invstd, &gamma, &beta, &grad_x})) {
        return cuda::bn_relu_backward(grad_y, x, mean, invstd, gamma, beta, training, grad_x,
                                      accumulate);
      }
    }
    return aten_cuda::bn_relu_backward(grad_y, x, mean, invstd, gamma, beta, training, grad_x,
                                       accumulate);
  }
  if (!use_cpu_kernel({&grad_y, &x, &mean, &invstd, &gamma, &beta, &grad_x})) {
    return reference::bn_relu_backward(grad_y, x, mean, invstd, gamma, beta, training, grad_x,
                                       accumulate);
  }
  const PlaneLayout s = layout_of(x);
  const PlaneLayout gy = layout_of(grad_y);
  const PlaneLayout gx = layout_of(grad_x);
  torch::Tensor grad_gamma = torch::empty_like(gamma);
  torch::Tensor grad_beta = torch::empty_like(beta);
  const double count = static_cast<double>(s.batch * s.plane);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      torch::kBFloat16, torch::kHalf, x.scalar_type(), "bn_relu_backward", [&] {
        using S = scalar_t;  // the data's dtype
        using T = compute_t<S>;
        const S* dy = grad_y.data_ptr<S>();
        const S* in = x.data_ptr<S>();
        S* dx = grad_x.data_ptr<S>();
        const T* m = mean.data_ptr<T>();
        const T* is = invstd.data_ptr<T>();
        const T* g = gamma.data_ptr<T>();
        const T* b = beta.data_ptr<T>();
        T* dg = grad_gamma.data_ptr<T>();
        T* db = grad_beta.data_ptr<T>();
        // Each task takes a range of channels and walks it sample by sample: within a sample the
        // range's planes are adjacent in memory, so reads stream (one channel across the batch
        // would jump a block buffer's sample stride, page after page). Per channel the planes are
        // still summed in batch order, as before.
        at::parallel_for(
            0, s.channels, grain_for(s.batch * s.plane), [&](int64_t begin, int64_t end) {
              const int64_t width = end - begin;
              std::vector<ChannelRelu<T>> relus;
              relus.reserve(static_cast<size_t>(width));
              for (int64_t c = begin; c < end; ++c) {
                // The same expressions as the forward (bn_relu_forward), so the ReLU mask agrees.
                relus.emplace_back(m[c], g[c] * is[c], b[c]);
              }
              std::vector<double> sum_dz(static_cast<size_t>(width), 0.0);
              std::vector<double> sum_dz_xc(static_cast<size_t>(width), 0.0);
              for (int64_t n = 0; n < s.batch; ++n) {
                for (int64_t c = begin; c < end; ++c) {
                  plane_backward_sums(dy + n * gy.batch_stride + c * gy.channel_stride,
                                      in + n * s.batch_stride + c * s.channel_stride, s.plane,
                                      relus[c - begin], &sum_dz[c - begin], &sum_dz_xc[c - begin]);
                }
              }
              std::vector<T> k1(static_cast<size_t>(width)), k2(static_cast<size_t>(width));
              for (int64_t c = begin; c < end; ++c) {
                const size_t j = static_cast<size_t>(c - begin);
                const double scale = static_cast<double>(relus[j].scale);
                const double inv = static_cast<double>(is[c]);
                dg[c] = static_cast<T>(sum_dz_xc[j] * inv);
                db[c] = static_cast<T>(sum_dz[j]);
                k1[j] = training ? static_cast<T>(-scale * sum_dz[j] / count) : T(0);
                k2[j] = training ? static_cast<T>(-scale * inv * inv * sum_dz_xc[j] / count) : T(0);
              }
              for (int64_t n = 0; n < s.batch; ++n) {
                for (int64_t c = begin; c < end; ++c) {
                  const size_t j = static_cast<size_t>(c - begin);
                  const S* dy_plane = dy + n * gy.batch_stride + c * gy.channel_stride;
                  const S* x_plane = in + n * s.batch_stride + c * s.channel_stride;
                  S* dx_plane = dx + n * gx.batch_stride + c * gx.channel_stride;
                  if (accumulate) {
                    plane_backward_dx<S, true>(dy_plane, x_plane, dx_plane, s.plane, relus[j],
                                               k1[j], k2[j]);
                  } else {
                    plane_backward_dx<S, false>(dy_plane, x_plane, dx_plane, s.plane, relus[j],
                                                k1[j], k2[j]);
                  }
                }
              }
            });
      });
  return {grad_gamma, grad_beta};
}

std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward_given_output(
    torch::Tensor& grad_y, const torch::Tensor& y, const torch::Tensor& x,
    const torch::Tensor& mean, const torch::Tensor& invstd, const torch::Tensor& gamma,
    bool training, torch::Tensor& grad_x, bool accumulate) {
  RECORD_USER_SCOPE("densenet::bn_relu_backward_given_output");
  TORCH_INTERNAL_ASSERT(x.dim() == 4 && grad_y.sizes() == x.sizes() && y.sizes() == x.sizes() &&
                            grad_x.sizes() == x.sizes(),
                        "bn_relu_backward_given_output: grad_y ", grad_y.sizes(), ", y ", y.sizes(),
                        ", x ", x.sizes(), ", grad_x ", grad_x.sizes());
  if (x.is_cuda()) {
    if constexpr (kCudaKernels) {
      if (cuda::takes({&grad_y, &y, &x, &mean, &invstd, &gamma, &grad_x})) {
        return cuda::bn_relu_backward_given_output(grad_y, y, x, mean, invstd, gamma, training,
                                                   grad_x, accumulate);
      }
    }
    at::threshold_backward_out(grad_y, grad_y, y, 0);  // dz, in place
    return aten_cuda::norm_backward(grad_y, x, mean, invstd, gamma, training, grad_x, accumulate);
  }
  // dz in place, as threshold_backward forms it (0 where y is not > 0, NaN included), which
  // LibTorch 1.13 has no CPU kernel for in Half.
  grad_y.masked_fill_(y.gt(0).logical_not(), 0);
  return reference::norm_backward(grad_y, x, mean, invstd, gamma, training, grad_x, accumulate);
}

namespace aten_cuda {

// ATen's CUDA batch-norm pieces (those SyncBatchNorm is built from) read the strided channel
// prefix in place and fuse what the reference spells out in several passes: one pass for the
// statistics, one for normalise (+ one for ReLU), two for backward. Float accumulation, as
// cuDNN's batch norm in the naive mode; no double copies of block-sized tensors. The CUDA
// kernels (bn_relu.cu) replace them where they take the tensors and are built.

std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x) {
  // var_mean returns its input's dtype: 16-bit data (a stage under amp; these are one layer's
  // new channels, or the block input) is read as float32 first, so that the statistics keep
  // float32's precision rather than bfloat16's 8 significant bits.
  const bool is_16_bit = x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf;
  auto [var, mean] =
      torch::var_mean(is_16_bit ? x.to(torch::kFloat) : x, {0, 2, 3}, /*unbiased=*/false);
  return {mean.to(torch::kDouble), var.to(torch::kDouble)};
}

void bn_relu_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out) {
  // (x - mean) * invstd * weight + bias with weight = 1 and invstd = scale.
  at::batch_norm_elemt_out(out, x, /*weight=*/c10::nullopt, beta, mean, scale, /*eps=*/0.0);
  out.clamp_min_(0);
}

std::tuple<torch::Tensor, torch::Tensor> norm_backward(const torch::Tensor& dz,
                                                       const torch::Tensor& x,
                                                       const torch::Tensor& mean,
                                                       const torch::Tensor& invstd,
                                                       const torch::Tensor& gamma, bool training,
                                                       torch::Tensor& grad_x, bool accumulate) {
  // sum dz and sum dz * (x - mean), and from them the affine gradients.
  auto [sum_dz, sum_dz_xmu, grad_gamma, grad_beta] = at::batch_norm_backward_reduce(
      dz, x, mean, invstd, gamma, /*input_g=*/true, /*weight_g=*/true, /*bias_g=*/true);
  torch::Tensor dx;
  if (training) {
    const torch::Tensor count =
        torch::full({1}, x.size(0) * x.size(2) * x.size(3), x.options().dtype(torch::kInt));
    dx = at::batch_norm_backward_elemt(dz, x, mean, invstd, gamma, sum_dz, sum_dz_xmu, count);
  } else {
    dx = dz * per_channel(gamma * invstd);
  }
  write_gradient(grad_x, dx, accumulate);
  return {grad_gamma, grad_beta};
}

std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward(
    const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
    const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
    bool training, torch::Tensor& grad_x, bool accumulate) {
  // dz = grad_y where the recomputed pre-activation is positive: the same elementwise kernel
  // as forward, so the mask is exactly the one forward applied.
  torch::Tensor dz = at::batch_norm_elemt(x, c10::nullopt, beta, mean, gamma * invstd, 0.0);
  at::threshold_backward_out(dz, grad_y, dz, 0);
  return norm_backward(dz, x, mean, invstd, gamma, training, grad_x, accumulate);
}

}  // namespace aten_cuda

namespace reference {

std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x) {
  auto [var, mean] = torch::var_mean(x.to(torch::kDouble), {0, 2, 3}, /*unbiased=*/false);
  return {mean, var};
}

// The dtype the reference computes in: float32 for 16-bit data (whose statistics and affine
// parameters are float32), the data's own otherwise.
torch::ScalarType math_type(const torch::Tensor& x) {
  const auto type = x.scalar_type();
  return type == torch::kBFloat16 || type == torch::kHalf ? torch::kFloat : type;
}

// The pre-activation (x - mean) * scale + beta, for float and 16-bit data evaluated in double and
// rounded to float32, as the kernels evaluate it (channel_relu.h); a 16-bit output then rounds it
// once more.
torch::Tensor affine_of(const torch::Tensor& x, const torch::Tensor& mean,
                        const torch::Tensor& scale, const torch::Tensor& beta) {
  if (x.scalar_type() != torch::kDouble) {
    auto d = [](const torch::Tensor& t) { return t.to(torch::kDouble); };
    return ((d(x) - per_channel(d(mean))) * per_channel(d(scale)) + per_channel(d(beta)))
        .to(torch::kFloat);
  }
  return (x - per_channel(mean)) * per_channel(scale) + per_channel(beta);
}

void bn_relu_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out) {
  out.copy_(affine_of(x, mean, scale, beta).clamp_min(0));
}

std::tuple<torch::Tensor, torch::Tensor> norm_backward(const torch::Tensor& dz,
                                                       const torch::Tensor& x,
                                                       const torch::Tensor& mean,
                                                       const torch::Tensor& invstd,
                                                       const torch::Tensor& gamma, bool training,
                                                       torch::Tensor& grad_x, bool accumulate) {
  // 16-bit data is read as float32: every product and sum below is float32 or double.
  const torch::Tensor dz_m = dz.to(math_type(dz)), x_m = x.to(math_type(x));
  const torch::Tensor scale = gamma * invstd;
  const torch::Tensor xhat = (x_m - per_channel(mean)) * per_channel(invstd);
  const torch::Tensor grad_beta = dz_m.sum({0, 2, 3});
  const torch::Tensor grad_gamma = (dz_m * xhat).sum({0, 2, 3});
  torch::Tensor dx = dz_m * per_channel(scale);
  if (training) {
    const double count = static_cast<double>(x.size(0) * x.size(2) * x.size(3));
    dx = dx - per_channel(scale * grad_beta / count) -
         xhat * per_channel(scale * grad_gamma / count);
  }
  write_gradient(grad_x, dx, accumulate);
  return {grad_gamma, grad_beta};
}

std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward(
    const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
    const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
    bool training, torch::Tensor& grad_x, bool accumulate) {
  const torch::Tensor dz = grad_y * affine_of(x, mean, gamma * invstd, beta).gt(0);
  return norm_backward(dz, x, mean, invstd, gamma, training, grad_x, accumulate);
}

}  // namespace reference

}  // namespace densenet::kernels

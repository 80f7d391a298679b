#include "kernels/bn_relu.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

// Hot loops are compiled for AVX2 as well as the baseline ISA and picked at load time, so one
// binary is portable and still uses 8-wide float arithmetic where the machine has it.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define DENSENET_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define DENSENET_MULTIVERSION
#endif

namespace densenet::kernels {

namespace {

// Independent partial sums so the compiler can vectorise reductions without reassociating
// (which it may not do for floating point without -ffast-math).
constexpr int kLanes = 8;

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

// The pre-activation (x - mean) * scale + beta, evaluated so that its sign is right even when
// it nearly cancels: for float in double (every float product and difference involved is
// exact or nearly so there), for double with fma. Rounding x * scale and beta - mean * scale
// separately would misplace ReLU kinks by up to an ulp of |mean * scale|, which flips masks of
// near-zero pre-activations relative to ATen and to the exact result.
inline float affine(float x, float mean, float scale, float beta) {
  return static_cast<float>((static_cast<double>(x) - static_cast<double>(mean)) *
                                static_cast<double>(scale) +
                            static_cast<double>(beta));
}
inline double affine(double x, double mean, double scale, double beta) {
  return std::fma(x - mean, scale, beta);
}

template <typename T>
DENSENET_MULTIVERSION void plane_bn_relu(const T* x, T* out, int64_t n, T mean, T scale, T beta) {
  for (int64_t i = 0; i < n; ++i) out[i] = std::max(affine(x[i], mean, scale, beta), T(0));
}

// Sums of dz and dz * (x - mean) over one plane, dz = grad_y where the ReLU was active.
template <typename T>
DENSENET_MULTIVERSION void plane_backward_sums(const T* grad_y, const T* x, int64_t n, T scale,
                                               T beta, T mean, double* sum_dz, double* sum_dz_xc) {
  double lanes_dz[kLanes] = {};
  double lanes_dz_xc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const T v = x[i + j];
      const T dz = affine(v, mean, scale, beta) > T(0) ? grad_y[i + j] : T(0);
      lanes_dz[j] += static_cast<double>(dz);
      lanes_dz_xc[j] += static_cast<double>(dz) * static_cast<double>(v - mean);
    }
  }
  double s1 = 0, s2 = 0;
  for (; i < n; ++i) {
    const T v = x[i];
    const T dz = affine(v, mean, scale, beta) > T(0) ? grad_y[i] : T(0);
    s1 += static_cast<double>(dz);
    s2 += static_cast<double>(dz) * static_cast<double>(v - mean);
  }
  for (int j = 0; j < kLanes; ++j) {
    s1 += lanes_dz[j];
    s2 += lanes_dz_xc[j];
  }
  *sum_dz += s1;
  *sum_dz_xc += s2;
}

// dx = scale * dz + k1 + (x - mean) * k2, written or added to grad_x (which may be grad_y).
template <typename T, bool kAccumulate>
DENSENET_MULTIVERSION void plane_backward_dx(const T* grad_y, const T* x, T* grad_x, int64_t n,
                                             T scale, T beta, T mean, T k1, T k2) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T dz = affine(v, mean, scale, beta) > T(0) ? grad_y[i] : T(0);
    const T dx = scale * dz + k1 + (v - mean) * k2;
    if constexpr (kAccumulate) {
      grad_x[i] += dx;
    } else {
      grad_x[i] = dx;
    }
  }
}

// Planes of H*W elements, contiguous each; batch and channel strides arbitrary.
struct PlaneLayout {
  int64_t batch, channels, plane, batch_stride, channel_stride;
};

bool has_contiguous_planes(const torch::Tensor& t) {
  return t.dim() == 4 && t.stride(3) == 1 && (t.size(2) <= 1 || t.stride(2) == t.size(3));
}

PlaneLayout layout_of(const torch::Tensor& t) {
  return {t.size(0), t.size(1), t.size(2) * t.size(3), t.stride(0), t.stride(1)};
}

bool use_cpu_kernel(std::initializer_list<const torch::Tensor*> tensors) {
  const torch::Tensor& first = **tensors.begin();
  if (!first.device().is_cpu()) return false;
  const auto type = first.scalar_type();
  if (type != torch::kFloat && type != torch::kDouble) return false;
  for (const torch::Tensor* t : tensors) {
    if (t->scalar_type() != type || !t->device().is_cpu()) return false;
    if (t->dim() == 4 && !has_contiguous_planes(*t)) return false;
    if (t->dim() == 1 && !t->is_contiguous()) return false;
  }
  return true;
}

int64_t grain_for(int64_t work_per_item) {
  // Enough work per task that thread start-up does not dominate (about 32k elements).
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_item));
}

torch::Tensor per_channel(const torch::Tensor& v) {
  return v.view({1, -1, 1, 1});
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x) {
  RECORD_USER_SCOPE("densenet::channel_mean_var");
  TORCH_INTERNAL_ASSERT(x.dim() == 4, "channel_mean_var expects (N, C, H, W), got ", x.sizes());
  if (!use_cpu_kernel({&x})) return reference::channel_mean_var(x);
  const PlaneLayout s = layout_of(x);
  torch::Tensor mean = torch::empty({s.channels}, x.options().dtype(torch::kDouble));
  torch::Tensor var = torch::empty({s.channels}, x.options().dtype(torch::kDouble));
  const double count = static_cast<double>(s.batch * s.plane);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "channel_mean_var", [&] {
    const scalar_t* data = x.data_ptr<scalar_t>();
    double* mean_data = mean.data_ptr<double>();
    double* var_data = var.data_ptr<double>();
    at::parallel_for(0, s.channels, grain_for(s.batch * s.plane), [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double sum = 0;
        for (int64_t n = 0; n < s.batch; ++n) {
          sum += plane_sum(data + n * s.batch_stride + c * s.channel_stride, s.plane);
        }
        const double m = sum / count;
        double squares = 0;
        for (int64_t n = 0; n < s.batch; ++n) {
          squares +=
              plane_squared_deviation(data + n * s.batch_stride + c * s.channel_stride, s.plane, m);
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
  if (!use_cpu_kernel({&x, &mean, &scale, &beta, &out})) {
    reference::bn_relu_forward(x, mean, scale, beta, out);
    return;
  }
  const PlaneLayout s = layout_of(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_relu_forward", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    const scalar_t* m = mean.data_ptr<scalar_t>();
    const scalar_t* a = scale.data_ptr<scalar_t>();
    const scalar_t* b = beta.data_ptr<scalar_t>();
    at::parallel_for(0, s.batch * s.channels, grain_for(s.plane), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t n = i / s.channels;
        const int64_t c = i % s.channels;
        plane_bn_relu(in + n * s.batch_stride + c * s.channel_stride, o + i * s.plane, s.plane,
                      m[c], a[c], b[c]);
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
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bn_relu_backward", [&] {
    using T = scalar_t;
    const T* dy = grad_y.data_ptr<T>();
    const T* in = x.data_ptr<T>();
    T* dx = grad_x.data_ptr<T>();
    const T* m = mean.data_ptr<T>();
    const T* is = invstd.data_ptr<T>();
    const T* g = gamma.data_ptr<T>();
    const T* b = beta.data_ptr<T>();
    T* dg = grad_gamma.data_ptr<T>();
    T* db = grad_beta.data_ptr<T>();
    at::parallel_for(0, s.channels, grain_for(s.batch * s.plane), [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        // The same expressions as the forward (bn_relu_forward), so the ReLU mask agrees.
        const T scale = g[c] * is[c];
        const T beta_c = b[c];
        double sum_dz = 0, sum_dz_xc = 0;
        for (int64_t n = 0; n < s.batch; ++n) {
          plane_backward_sums(dy + n * gy.batch_stride + c * gy.channel_stride,
                              in + n * s.batch_stride + c * s.channel_stride, s.plane, scale,
                              beta_c, m[c], &sum_dz, &sum_dz_xc);
        }
        const double inv = static_cast<double>(is[c]);
        dg[c] = static_cast<T>(sum_dz_xc * inv);
        db[c] = static_cast<T>(sum_dz);
        const T k1 = training ? static_cast<T>(-static_cast<double>(scale) * sum_dz / count) : T(0);
        const T k2 =
            training ? static_cast<T>(-static_cast<double>(scale) * inv * inv * sum_dz_xc / count)
                     : T(0);
        for (int64_t n = 0; n < s.batch; ++n) {
          const T* dy_plane = dy + n * gy.batch_stride + c * gy.channel_stride;
          const T* x_plane = in + n * s.batch_stride + c * s.channel_stride;
          T* dx_plane = dx + n * gx.batch_stride + c * gx.channel_stride;
          if (accumulate) {
            plane_backward_dx<T, true>(dy_plane, x_plane, dx_plane, s.plane, scale, beta_c, m[c],
                                       k1, k2);
          } else {
            plane_backward_dx<T, false>(dy_plane, x_plane, dx_plane, s.plane, scale, beta_c, m[c],
                                        k1, k2);
          }
        }
      }
    });
  });
  return {grad_gamma, grad_beta};
}

namespace reference {

std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x) {
  auto [var, mean] = torch::var_mean(x.to(torch::kDouble), {0, 2, 3}, /*unbiased=*/false);
  return {mean, var};
}

// The pre-activation (x - mean) * scale + beta, for float evaluated in double (see `affine`).
torch::Tensor affine_of(const torch::Tensor& x, const torch::Tensor& mean,
                        const torch::Tensor& scale, const torch::Tensor& beta) {
  if (x.scalar_type() == torch::kFloat) {
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

std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward(
    const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
    const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
    bool training, torch::Tensor& grad_x, bool accumulate) {
  const torch::Tensor scale = gamma * invstd;
  const torch::Tensor dz = grad_y * affine_of(x, mean, scale, beta).gt(0);
  const torch::Tensor xhat = (x - per_channel(mean)) * per_channel(invstd);
  const torch::Tensor grad_beta = dz.sum({0, 2, 3});
  const torch::Tensor grad_gamma = (dz * xhat).sum({0, 2, 3});
  torch::Tensor dx = dz * per_channel(scale);
  if (training) {
    const double count = static_cast<double>(x.size(0) * x.size(2) * x.size(3));
    dx = dx - per_channel(scale * grad_beta / count) -
         xhat * per_channel(scale * grad_gamma / count);
  }
  if (accumulate) {
    grad_x.add_(dx);
  } else {
    grad_x.copy_(dx);
  }
  return {grad_gamma, grad_beta};
}

}  // namespace reference

}  // namespace densenet::kernels

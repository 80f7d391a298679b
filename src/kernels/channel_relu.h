#pragma once

// The BN-ReLU of one channel as the CPU kernels evaluate it (bn_relu.cpp and the fused
// BN-ReLU + 1x1 convolution in norm_relu_conv1x1.cpp): both must apply exactly the same ReLU
// mask, so both take it from here, with the loop conventions they share. Internal to the
// kernels.

#include "kernels/sixteen_bit.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

// Hot loops are compiled for AVX2 as well as the baseline ISA and picked at load time, so one
// binary is portable and still uses 8-wide float arithmetic where the machine has it.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define DENSENET_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define DENSENET_MULTIVERSION
#endif

namespace densenet::kernels::detail {

// Independent partial sums so the compiler can vectorise reductions without reassociating
// (which it may not do for floating point without -ffast-math).
constexpr int kLanes = 8;

/// The type the kernels compute in for data stored as S: S itself for float and double; float32
/// for bfloat16 and float16 (the stages' buffers under amp), whose values are read into float32
/// exactly, so that every product, sum and ReLU mask is float32's (statistics in double) and only
/// a stored result is rounded to 16 bits. The per-channel parameters (mean, scale, beta, invstd,
/// gamma) and their gradients are in this type.
template <typename S>
struct ComputeType {
  using type = S;
};
template <>
struct ComputeType<c10::BFloat16> {
  using type = float;
};
template <>
struct ComputeType<c10::Half> {
  using type = float;
};
template <typename S>
using compute_t = typename ComputeType<S>::type;

/// Whether the CPU kernels take data of this dtype (float, double, bfloat16, float16).
inline bool kernel_dtype(torch::ScalarType type) {
  return type == torch::kFloat || type == torch::kDouble || type == torch::kBFloat16 ||
         type == torch::kHalf;
}

/// The dtype of compute_t for data of `type`.
inline torch::ScalarType compute_dtype(torch::ScalarType type) {
  return type == torch::kBFloat16 || type == torch::kHalf ? torch::kFloat : type;
}

/// Items per parallel task: enough work per task that thread start-up does not dominate
/// (about 32k elements).
inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_item));
}

/// (N, C, H, W) whose H*W plane of each (n, c) is contiguous; batch and channel strides free.
inline bool has_contiguous_planes(const torch::Tensor& t) {
  return t.dim() == 4 && t.stride(3) == 1 && (t.size(2) <= 1 || t.stride(2) == t.size(3));
}

// The pre-activation (x - mean) * scale + beta, evaluated so that its sign is right even when
// it nearly cancels: for float in double (every float product and difference involved is
// exact or nearly so there), for double with fma. Rounding x * scale and beta - mean * scale
// separately would misplace ReLU kinks by up to an ulp of |mean * scale|, which flips masks of
// near-zero pre-activations relative to ATen and to the exact result.
inline double exact_affine(float x, float mean, float scale, float beta) {
  return (static_cast<double>(x) - static_cast<double>(mean)) * static_cast<double>(scale) +
         static_cast<double>(beta);
}

// Floats ordered as integers: key(a) < key(b) iff a < b (no NaNs), -0 just below +0.
inline int32_t order_key(float value) {
  int32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits >= 0 ? bits : bits ^ 0x7fffffff;
}

inline float from_order_key(int32_t key) {
  const int32_t bits = key >= 0 ? key : key ^ 0x7fffffff;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// One channel's BN-ReLU. For double the mask is the sign of the fma-evaluated pre-activation.
// For float, the double evaluation is monotone in x, so the floats where it is positive form an
// interval [lo, hi], found once per channel by bisection over the floats: the hot loops then
// test the mask with two float compares (8 lanes with AVX2) and get exactly the mask of the
// double evaluation, while values are computed in float.
template <typename T>
struct ChannelRelu;

template <>
struct ChannelRelu<double> {
  double mean, scale, beta;
  ChannelRelu(double m, double s, double b) : mean(m), scale(s), beta(b) {}
  bool active(double x) const { return std::fma(x - mean, scale, beta) > 0.0; }
  double value(double x) const { return std::max(std::fma(x - mean, scale, beta), 0.0); }
};

template <>
struct ChannelRelu<float> {
  float mean, scale, beta, lo, hi;
  ChannelRelu(float m, float s, float b) : mean(m), scale(s), beta(b) {
    const float infinity = std::numeric_limits<float>::infinity();
    auto positive = [&](int64_t key) {
      return exact_affine(from_order_key(static_cast<int32_t>(key)), m, s, b) > 0.0;
    };
    const int64_t bottom = order_key(-infinity), top = order_key(infinity);
    lo = infinity;  // empty unless found below
    hi = -infinity;
    if (s > 0.0f) {  // increasing: the smallest positive key
      if (!positive(top)) return;
      int64_t below = bottom, at = top;  // positive(at); not positive(below)
      if (positive(bottom)) {
        at = bottom;
      } else {
        while (at - below > 1) {
          const int64_t middle = below + (at - below) / 2;
          (positive(middle) ? at : below) = middle;
        }
      }
      lo = from_order_key(static_cast<int32_t>(at));
      hi = infinity;
    } else if (s < 0.0f) {  // decreasing: the largest positive key
      if (!positive(bottom)) return;
      int64_t at = bottom, above = top;  // positive(at); not positive(above)
      if (positive(top)) {
        at = top;
      } else {
        while (above - at > 1) {
          const int64_t middle = at + (above - at) / 2;
          (positive(middle) ? at : above) = middle;
        }
      }
      lo = -infinity;
      hi = from_order_key(static_cast<int32_t>(at));
    } else if (exact_affine(0.0f, m, s, b) > 0.0) {  // constant pre-activation, positive
      lo = -infinity;
      hi = infinity;
    }
  }
  // Branch-free (bitwise &, both sides always evaluated) so that the loops vectorise into
  // compares and blends: a branch on a ReLU mask mispredicts about half the time.
  bool active(float x) const { return (x >= lo) & (x <= hi); }
  float value(float x) const {
    const float v =
        static_cast<float>(exact_affine(x, mean, scale, beta));  // a select, not a branch
    const bool keep = active(x) & (v > 0.0f);
    return keep ? v : 0.0f;
  }
};

// out = relu(bn(x)) over a plane of n values, the one BN-ReLU loop of the CPU kernels. Data stored
// as S (float, double, or 16-bit) is computed in T = compute_t<S>: 16-bit planes go through the
// float32 loop a block at a time (sixteen_bit.h), with the same arithmetic and roundings as
// element by element. Static: each kernel file that calls it gets its own AVX2 and baseline
// clones (target_clones wants the definition in the file that uses it).
template <typename S, typename T = compute_t<S>>
static DENSENET_MULTIVERSION void plane_bn_relu(const S* x, S* out, int64_t n,
                                                ChannelRelu<T> relu) {
  if constexpr (is_sixteen_bit_v<S>) {
    float x_block[kSixteenBitBlock], out_block[kSixteenBitBlock];
    for_each_block(n, [&](int64_t start, int64_t len) {
      widen(x + start, x_block, len);
      plane_bn_relu<float>(x_block, out_block, len, relu);
      narrow(out_block, out + start, len);
    });
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = relu.value(x[i]);
  }
}

}  // namespace densenet::kernels::detail

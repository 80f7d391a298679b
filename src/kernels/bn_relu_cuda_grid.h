#pragma once

// What each thread of the CUDA BN-ReLU kernels (bn_relu.cu) computes, as host-device functions.
// A kernel is one of these functions plus, for the sums, a block reduction; the unit test
// tests/kernels/test_cuda_grid.cpp walks the same grid on the CPU, so that the indexing, the
// splits and the arithmetic are checked on machines without a GPU (and against the CPU kernels
// of bn_relu.cpp), and the GPU test only has the launches and the reductions left to prove.
//
// The grid: block (c, s) = (blockIdx.x, blockIdx.y) takes channel c and the s-th of `splits`
// interleaved shares of its N*H*W values; thread t of it visits value j = s * kThreads + t, then
// every splits * kThreads, where j = n * H*W + p is value p of sample n's plane. Consecutive
// threads read consecutive addresses within a plane (coalesced), every per-channel quantity is
// one uniform load per block, and a channel's sums are reduced within its blocks and then over
// its splits in a fixed order: deterministic, no atomics.
//
// Arithmetic follows the CPU kernels (channel_relu.h, bn_relu.cpp) exactly, with A the
// accumulation type (float for float, Half and BFloat16 data; double for double):
//  - pre-activation (x - mean) * scale + beta: for A = float evaluated in double, for double
//    with fma; the ReLU mask is its sign, the forward output max(., 0) rounded once to float
//    (for 16-bit data then to the data type, as a float kernel's output would be stored);
//  - backward: dz = grad_y where the mask is on; per-thread sums of dz and dz * (x - mean) in A,
//    combined per block and over the splits in double; dx = scale * dz + k1 + (x - mean) * k2
//    in A, with scale = gamma * invstd rounded to A and k1, k2 the CPU kernel's batch-statistics
//    terms (0 in eval).
// Where the CPU rounds each product and sum separately, so does the GPU (the *_rn functions:
// nvcc would otherwise contract them into fmas): float and double outputs of the forward and
// of the eval backward are bit for bit the CPU kernels'.

#include <c10/macros/Macros.h>

#include <ATen/AccumulateType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <ATen/cuda/detail/IntegerDivider.cuh>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace densenet::kernels::cuda_grid {

/// Threads per block: 8 warps, so that 8 blocks fill an sm_90 SM (2048 threads) and a block's
/// reduction is over 8 warps' sums.
constexpr int kThreads = 256;
/// Resident blocks per SM at full occupancy (2048 / kThreads on sm_80 and sm_90).
constexpr int64_t kBlocksPerSm = 8;
/// Values per thread below which more splits of a channel cost more (blocks, partial sums)
/// than the parallelism they add.
constexpr int64_t kMinValuesPerThread = 8;
/// grid.y's limit.
constexpr int64_t kMaxSplits = 65535;

/// Blocks per channel: enough blocks over all channels to fill `sms` SMs once at full
/// occupancy, but no more than give each thread kMinValuesPerThread of the `count` values.
inline int64_t splits_for(int64_t channels, int64_t count, int64_t sms) {
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  const int64_t fill =
      ceil_div(std::max<int64_t>(sms, 1) * kBlocksPerSm, std::max<int64_t>(channels, 1));
  const int64_t useful = ceil_div(count, kThreads * kMinValuesPerThread);
  return std::clamp<int64_t>(std::min(fill, useful), 1, kMaxSplits);
}

template <typename T>
using acc_t = at::acc_type<T, /*is_cuda=*/true>;

// Rounded operations that nvcc may not contract into fmas (the CPU kernels round each one).
C10_HOST_DEVICE inline float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
C10_HOST_DEVICE inline double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
C10_HOST_DEVICE inline float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
C10_HOST_DEVICE inline double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
C10_HOST_DEVICE inline double fma_rn(double a, double b, double c) {
#ifdef __CUDA_ARCH__
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

/// The BN-ReLU of one channel in the accumulation type A, as ChannelRelu (channel_relu.h).
template <typename A>
struct Affine;

template <>
struct Affine<float> {
  float mean, scale, beta;
  // exact_affine: every float difference and product is (nearly) exact in double.
  C10_HOST_DEVICE double pre(float x) const {
    return add_rn(
        mul_rn(static_cast<double>(x) - static_cast<double>(mean), static_cast<double>(scale)),
        static_cast<double>(beta));
  }
  C10_HOST_DEVICE bool active(float x) const { return pre(x) > 0.0; }
  template <typename T>
  C10_HOST_DEVICE T value(float x) const {
    const double v = pre(x);
    return static_cast<T>(v > 0.0 ? static_cast<float>(v) : 0.0f);
  }
};

template <>
struct Affine<double> {
  double mean, scale, beta;
  C10_HOST_DEVICE double pre(double x) const { return fma_rn(x - mean, scale, beta); }
  C10_HOST_DEVICE bool active(double x) const { return pre(x) > 0.0; }
  // std::max(v, 0.0) as the CPU kernel takes it: v unless v < 0 (-0 and NaN pass).
  template <typename T>
  C10_HOST_DEVICE T value(double x) const {
    const double v = pre(x);
    return v < 0.0 ? 0.0 : v;
  }
};

/// One channel of an (N, C, H, W) operand with contiguous H*W planes: value p of sample n at
/// base[n * batch_stride + p].
template <typename T>
struct ChannelPlanes {
  T* base;
  int64_t batch_stride;
  C10_HOST_DEVICE T& operator()(int64_t n, int64_t p) const { return base[n * batch_stride + p]; }
};

/// An (N, C, H, W) operand with contiguous H*W planes and any batch and channel strides (a
/// channel prefix of a block buffer).
template <typename T>
struct Planes {
  T* data;
  int64_t batch_stride, channel_stride;
  C10_HOST_DEVICE ChannelPlanes<T> channel(int64_t c) const {
    return {data + c * channel_stride, batch_stride};
  }
};

/// The values of one channel that a thread visits (see the top of this file). Index is
/// uint32_t when count + step fits it (ATen's IntDivider then divides with a multiply and a
/// shift), else uint64_t.
template <typename Index>
struct ChannelWalk {
  at::cuda::detail::IntDivider<Index> plane;  // H*W
  Index count;                                // N*H*W
  Index step;                                 // splits * kThreads

  C10_HOST_DEVICE Index first(Index split, Index thread) const {
    return split * static_cast<Index>(kThreads) + thread;
  }
};

template <typename Index>
ChannelWalk<Index> channel_walk(int64_t plane, int64_t count, int64_t splits) {
  return {at::cuda::detail::IntDivider<Index>(static_cast<Index>(plane)), static_cast<Index>(count),
          static_cast<Index>(splits * kThreads)};
}

/// Whether ChannelWalk<uint32_t> holds a walk over `count` values in `splits` splits.
inline bool fits_32_bits(int64_t plane, int64_t count, int64_t splits) {
  return plane <= INT32_MAX && count <= INT32_MAX && splits <= kMaxSplits;  // + step < 2^32
}

/// Forward of one block's share of channel c: out = relu((x - mean) * scale + beta).
template <typename T, typename A, typename Index>
C10_HOST_DEVICE void forward_thread(ChannelPlanes<const T> x, ChannelPlanes<T> out,
                                    Affine<A> affine, const ChannelWalk<Index>& walk, Index split,
                                    Index thread) {
  for (Index j = walk.first(split, thread); j < walk.count; j += walk.step) {
    const auto pos = walk.plane.divmod(j);
    out(pos.div, pos.mod) = affine.template value<T>(static_cast<A>(x(pos.div, pos.mod)));
  }
}

/// The ReLU mask recomputed from x (bn_relu_backward).
template <typename A>
struct RecomputedMask {
  Affine<A> affine;
  C10_HOST_DEVICE bool operator()(A x, int64_t, int64_t) const { return affine.active(x); }
};

/// The ReLU mask read from the forward's output y (bn_relu_backward_given_output): y > 0.
template <typename T, typename A>
struct OutputMask {
  ChannelPlanes<const T> y;
  C10_HOST_DEVICE bool operator()(A, int64_t n, int64_t p) const {
    return static_cast<A>(y(n, p)) > A(0);
  }
};

/// One thread's sums over the values it visits, in A.
template <typename A>
struct Sums {
  A dz = 0;
  A dz_xc = 0;  // dz * (x - mean)
};

/// dx = scale * dz + k1 + (x - mean) * k2 for one channel (bn_relu.cpp's plane_backward_dx).
template <typename A>
struct DxTerms {
  A scale, k1, k2;
};

/// The backward of one channel: reads grad_y and x (and y for OutputMask), writes grad_x, which
/// may be grad_y itself (each value is read before it is written, by the same thread).
template <typename T, typename A, typename Mask>
struct ChannelBackward {
  ChannelPlanes<const T> grad_y, x;
  ChannelPlanes<T> grad_x;
  Mask mask;
  A mean;
  bool accumulate;  // grad_x += dx, else grad_x = dx

  C10_HOST_DEVICE A dz(A xv, int64_t n, int64_t p) const {
    const A g = static_cast<A>(grad_y(n, p));  // loaded whatever the mask: a select
    return mask(xv, n, p) ? g : A(0);
  }

  C10_HOST_DEVICE void write_dx(A xv, A dz, const DxTerms<A>& terms, int64_t n, int64_t p) const {
    const A dx = add_rn(add_rn(mul_rn(terms.scale, dz), terms.k1), mul_rn(xv - mean, terms.k2));
    T& out = grad_x(n, p);
    out = static_cast<T>(accumulate ? add_rn(static_cast<A>(out), dx) : dx);
  }

  /// The sums over this thread's values; with `write_dx_too` also writes dx from `terms` in the
  /// same pass, for eval (and sync-bn's local pass), where dx needs no sums: k1 = k2 = 0.
  template <typename Index>
  C10_HOST_DEVICE Sums<A> sums(const ChannelWalk<Index>& walk, Index split, Index thread,
                               bool write_dx_too, const DxTerms<A>& terms) const {
    Sums<A> s;
    for (Index j = walk.first(split, thread); j < walk.count; j += walk.step) {
      const auto pos = walk.plane.divmod(j);
      const A xv = static_cast<A>(x(pos.div, pos.mod));
      const A d = dz(xv, pos.div, pos.mod);
      s.dz += d;
      s.dz_xc += d * (xv - mean);
      if (write_dx_too) write_dx(xv, d, terms, pos.div, pos.mod);
    }
    return s;
  }

  template <typename Index>
  C10_HOST_DEVICE void dx(const ChannelWalk<Index>& walk, Index split, Index thread,
                          const DxTerms<A>& terms) const {
    for (Index j = walk.first(split, thread); j < walk.count; j += walk.step) {
      const auto pos = walk.plane.divmod(j);
      const A xv = static_cast<A>(x(pos.div, pos.mod));
      write_dx(xv, dz(xv, pos.div, pos.mod), terms, pos.div, pos.mod);
    }
  }
};

/// A channel's sums over all its values, from its blocks' partial sums in `partials`
/// ((2, splits, channels) doubles: sums of dz, then of dz * (x - mean)), added in split order.
struct ChannelTotals {
  double dz = 0;
  double dz_xc = 0;
};

C10_HOST_DEVICE inline ChannelTotals channel_totals(const double* partials, int64_t channels,
                                                    int64_t splits, int64_t c) {
  ChannelTotals t;
  for (int64_t s = 0; s < splits; ++s) {
    t.dz += partials[s * channels + c];
    t.dz_xc += partials[(splits + s) * channels + c];
  }
  return t;
}

/// The affine gradients and dx's terms from a channel's totals, as bn_relu.cpp's CPU kernel
/// forms them (in double, from scale = gamma * invstd rounded to A).
template <typename A>
struct ChannelGrads {
  A grad_gamma, grad_beta;
  DxTerms<A> terms;
};

template <typename A>
C10_HOST_DEVICE ChannelGrads<A> channel_grads(const ChannelTotals& t, A gamma, A invstd,
                                              double count, bool training) {
  const A scale = mul_rn(gamma, invstd);
  const double s = static_cast<double>(scale);
  const double inv = static_cast<double>(invstd);
  ChannelGrads<A> g;
  g.grad_gamma = static_cast<A>(t.dz_xc * inv);
  g.grad_beta = static_cast<A>(t.dz);
  g.terms.scale = scale;
  g.terms.k1 = training ? static_cast<A>(-s * t.dz / count) : A(0);
  g.terms.k2 = training ? static_cast<A>(-s * inv * inv * t.dz_xc / count) : A(0);
  return g;
}

/// dx's terms without the batch-statistics terms (eval, and sync-bn's local pass).
template <typename A>
C10_HOST_DEVICE DxTerms<A> eval_terms(A gamma, A invstd) {
  return {mul_rn(gamma, invstd), A(0), A(0)};
}

/// Everything a backward kernel reads, for all channels; channel(c) is channel c's part. The
/// parameters are (C,) in A.
template <typename T, typename A>
struct BackwardArgs {
  Planes<const T> grad_y, x;
  Planes<const T> y;  // OutputMask only
  Planes<T> grad_x;
  const A* mean;
  const A* invstd;
  const A* gamma;
  const A* beta;  // RecomputedMask only
  int64_t channels, splits;
  double count;  // N*H*W
  bool training, accumulate;

  template <bool kOutputMask>
  C10_HOST_DEVICE auto channel(int64_t c) const {
    if constexpr (kOutputMask) {
      return ChannelBackward<T, A, OutputMask<T, A>>{
          grad_y.channel(c), x.channel(c), grad_x.channel(c), {y.channel(c)}, mean[c], accumulate};
    } else {
      // The forward's scale (the stage's gamma * invstd) and so its mask.
      const Affine<A> affine{mean[c], mul_rn(gamma[c], invstd[c]), beta[c]};
      return ChannelBackward<T, A, RecomputedMask<A>>{
          grad_y.channel(c), x.channel(c), grad_x.channel(c), {affine}, mean[c], accumulate};
    }
  }
};

}  // namespace densenet::kernels::cuda_grid

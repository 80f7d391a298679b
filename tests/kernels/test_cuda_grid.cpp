// The CUDA kernels' per-thread code (src/kernels/bn_relu_cuda_grid.h) walked on the CPU block by
// block and thread by thread as bn_relu.cu launches it, and compared with the CPU path through
// the device harness: the indexing, the splits of a channel over blocks, the strides and the
// arithmetic are checked on every machine. The launches and CUB's block reduction are left to
// the GPU test (test_bn_relu_cuda.cpp, in builds with the CUDA kernels).
#include "kernels/bn_relu_cuda_args.h"
#include "kernels/bn_relu_cuda_grid.h"
#include "kernels/bn_relu_device_harness.h"

#include <ATen/Dispatch.h>
#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace densenet::kernels {
namespace {

namespace grid = cuda_grid;

/// The grid as bn_relu.cu plans it for `sms` SMs (its grid_shape).
struct Shape {
  int64_t channels, plane, count, splits;
};

Shape shape_of(const torch::Tensor& x, int64_t sms) {
  const int64_t plane = x.size(2) * x.size(3);
  const int64_t count = x.size(0) * plane;
  return {x.size(1), plane, count, grid::splits_for(x.size(1), count, sms)};
}

using grid::in_accumulation_type;
using grid::planes_of;

/// forward_kernel on every block (c, split) and thread.
template <typename T, typename Index>
void emulate_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out, int64_t sms) {
  using A = grid::acc_t<T>;
  const Shape s = shape_of(x, sms);
  if (s.channels == 0 || s.count == 0) return;
  const auto walk = grid::channel_walk<Index>(s.plane, s.count, s.splits);
  const torch::Tensor m = in_accumulation_type(x, mean), a = in_accumulation_type(x, scale);
  const torch::Tensor b = in_accumulation_type(x, beta);
  const auto xs = planes_of<const T>(x);
  const auto outs = planes_of<T>(out);
  for (int64_t c = 0; c < s.channels; ++c) {
    const grid::Affine<A> affine{m.data_ptr<A>()[c], a.data_ptr<A>()[c], b.data_ptr<A>()[c]};
    for (Index split = 0; split < static_cast<Index>(s.splits); ++split) {
      for (Index thread = 0; thread < static_cast<Index>(grid::kThreads); ++thread) {
        grid::forward_thread<T, A, Index>(xs.channel(c), outs.channel(c), affine, walk, split,
                                          thread);
      }
    }
  }
}

/// sums_kernel, then dx_kernel (training) or affine_grads_kernel (eval), on every block and
/// thread. A block's threads are added in thread order here (CUB's tree on the GPU).
template <bool kOutputMask, typename T, typename Index>
std::tuple<torch::Tensor, torch::Tensor> emulate_backward(
    const torch::Tensor& grad_y, const torch::Tensor* y, const torch::Tensor& x,
    const torch::Tensor& mean, const torch::Tensor& invstd, const torch::Tensor& gamma,
    const torch::Tensor* beta, bool training, torch::Tensor& grad_x, bool accumulate, int64_t sms) {
  using A = grid::acc_t<T>;
  const Shape s = shape_of(x, sms);
  const grid::AccumulationParameters p =
      grid::accumulation_parameters(x, mean, invstd, gamma, beta);
  const torch::Tensor& g = p.gamma;
  torch::Tensor grad_gamma = torch::zeros({s.channels}, g.options());
  torch::Tensor grad_beta = torch::zeros({s.channels}, g.options());
  if (s.channels == 0 || s.count == 0) {
    return {grad_gamma.to(gamma.scalar_type()), grad_beta.to(gamma.scalar_type())};
  }
  const auto args =
      grid::backward_args<T, A>(grad_y, y, x, grad_x, p, s.splits, training, accumulate);
  const auto walk = grid::channel_walk<Index>(s.plane, s.count, s.splits);
  std::vector<double> partials(static_cast<size_t>(2 * s.splits * s.channels));
  for (int64_t c = 0; c < s.channels; ++c) {
    const grid::DxTerms<A> terms = grid::eval_terms(args.gamma[c], args.invstd[c]);
    for (int64_t split = 0; split < s.splits; ++split) {
      double dz = 0, dz_xc = 0;
      for (Index thread = 0; thread < static_cast<Index>(grid::kThreads); ++thread) {
        const grid::Sums<A> mine = args.template channel<kOutputMask>(c).sums(
            walk, static_cast<Index>(split), thread, /*write_dx_too=*/!training, terms);
        dz += static_cast<double>(mine.dz);
        dz_xc += static_cast<double>(mine.dz_xc);
      }
      partials[split * s.channels + c] = dz;
      partials[(s.splits + split) * s.channels + c] = dz_xc;
    }
  }
  for (int64_t c = 0; c < s.channels; ++c) {
    const grid::ChannelGrads<A> grads =
        grid::channel_grads(grid::channel_totals(partials.data(), s.channels, s.splits, c),
                            args.gamma[c], args.invstd[c], args.count, training);
    grad_gamma.data_ptr<A>()[c] = grads.grad_gamma;
    grad_beta.data_ptr<A>()[c] = grads.grad_beta;
    if (!training) continue;
    for (Index split = 0; split < static_cast<Index>(s.splits); ++split) {
      for (Index thread = 0; thread < static_cast<Index>(grid::kThreads); ++thread) {
        args.template channel<kOutputMask>(c).dx(walk, split, thread, grads.terms);
      }
    }
  }
  return {grad_gamma.to(gamma.scalar_type()), grad_beta.to(gamma.scalar_type())};
}

/// Calls f<T, Index>() for x's dtype and the index type asked for.
#define DENSENET_EMULATE(x, wide_index, ...)                                                    \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, (x).scalar_type(), "emulate", [&] { \
    if (wide_index) {                                                                           \
      using Index = uint64_t;                                                                   \
      __VA_ARGS__;                                                                              \
    } else {                                                                                    \
      using Index = uint32_t;                                                                   \
      __VA_ARGS__;                                                                              \
    }                                                                                           \
  })

/// The kernels as planned for `sms` SMs, with 32- or 64-bit indices, run on the CPU.
testing::BnReluOps emulated(int64_t sms, bool wide_index) {
  testing::BnReluOps ops;
  ops.name = "CUDA grid for " + std::to_string(sms) + " SMs, " + (wide_index ? "64" : "32") +
             "-bit index, on the CPU";
  ops.forward = [=](const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                    const torch::Tensor& beta, torch::Tensor& out) {
    DENSENET_EMULATE(x, wide_index,
                     emulate_forward<scalar_t, Index>(x, mean, scale, beta, out, sms));
  };
  ops.backward = [=](const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
                     const torch::Tensor& invstd, const torch::Tensor& gamma,
                     const torch::Tensor& beta, bool training, torch::Tensor& grad_x,
                     bool accumulate) {
    std::tuple<torch::Tensor, torch::Tensor> grads;
    DENSENET_EMULATE(
        x, wide_index,
        grads = emulate_backward<false, scalar_t, Index>(grad_y, nullptr, x, mean, invstd, gamma,
                                                         &beta, training, grad_x, accumulate, sms));
    return grads;
  };
  ops.backward_given_output = [=](torch::Tensor& grad_y, const torch::Tensor& y,
                                  const torch::Tensor& x, const torch::Tensor& mean,
                                  const torch::Tensor& invstd, const torch::Tensor& gamma,
                                  bool training, torch::Tensor& grad_x, bool accumulate) {
    std::tuple<torch::Tensor, torch::Tensor> grads;
    DENSENET_EMULATE(
        x, wide_index,
        grads = emulate_backward<true, scalar_t, Index>(grad_y, &y, x, mean, invstd, gamma, nullptr,
                                                        training, grad_x, accumulate, sms));
    return grads;
  };
  return ops;
}

class CudaGridOnCpu : public ::testing::TestWithParam<testing::DeviceCase> {};

TEST_P(CudaGridOnCpu, MatchesTheCpuPath) {
  // An H200's 132 SMs: several blocks per channel where a channel has many values. Two SMs:
  // mostly one block per channel, and 64-bit indices (the path for more than 2^31 values).
  testing::check_against_cpu(emulated(132, false), GetParam());
  testing::check_against_cpu(emulated(2, true), GetParam());
}

INSTANTIATE_TEST_SUITE_P(OddShapes, CudaGridOnCpu, ::testing::ValuesIn(testing::odd_cases()),
                         [](const auto& info) { return info.param.name(); });

TEST(CudaGrid, SplitsFillTheGpuWithoutStarvingThreads) {
  // 132 SMs x 8 blocks = 1056 blocks in all, at least 8 values per thread (2048 per block).
  EXPECT_EQ(grid::splits_for(3, 4 * 64 * 64, 132), 8);     // values limit: 16384 / 2048
  EXPECT_EQ(grid::splits_for(24, 64 * 56 * 56, 132), 44);  // fill: 1056 / 24
  EXPECT_EQ(grid::splits_for(2048, 64 * 7 * 7, 132), 1);   // channels alone fill it
  EXPECT_EQ(grid::splits_for(1, 1, 132), 1);               // never below one
  EXPECT_EQ(grid::splits_for(1, int64_t{1} << 40, 1 << 20), grid::kMaxSplits);  // grid.y's limit
}

TEST(CudaGrid, EveryValueIsVisitedOnce) {
  auto check = [](auto index_type, int64_t plane, int64_t count, int64_t splits) {
    using Index = decltype(index_type);
    const auto walk = grid::channel_walk<Index>(plane, count, splits);
    std::vector<int> visits(static_cast<size_t>(count), 0);
    for (Index split = 0; split < static_cast<Index>(splits); ++split) {
      for (Index thread = 0; thread < static_cast<Index>(grid::kThreads); ++thread) {
        for (Index j = walk.first(split, thread); j < walk.count; j += walk.step) {
          const auto pos = walk.plane.divmod(j);
          ASSERT_LT(static_cast<int64_t>(pos.mod), plane);
          ++visits[static_cast<size_t>(pos.div * plane + pos.mod)];
        }
      }
    }
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(visits[i], 1) << "value " << i;
  };
  for (const auto& [plane, count, splits] : std::vector<std::array<int64_t, 3>>{
           {1, 300, 1}, {49, 49 * 64, 3}, {3136, 3136 * 2, 5}, {7, 7, 4}, {5, 5 * 2000, 8}}) {
    SCOPED_TRACE("plane " + std::to_string(plane) + " count " + std::to_string(count) + " splits " +
                 std::to_string(splits));
    check(uint32_t{}, plane, count, splits);
    check(uint64_t{}, plane, count, splits);
  }
  EXPECT_TRUE(grid::fits_32_bits(3136, int64_t{1} << 30, grid::kMaxSplits));
  EXPECT_FALSE(grid::fits_32_bits(3136, int64_t{1} << 31, 1));
}

}  // namespace
}  // namespace densenet::kernels

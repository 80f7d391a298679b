// The CUDA kernels (src/kernels/bn_relu.cu) on a GPU, against the CPU path and the ATen
// composite in double (the device harness), on odd and realistic shapes; and the dispatch of
// bn_relu.h to them. Skipped, saying so, where torch::cuda::is_available() is false (every test
// machine without a GPU); bench/gpu/device_check.sh runs this binary first on a GPU.
#include "kernels/bn_relu.h"
#include "kernels/bn_relu_cuda.h"
#include "kernels/bn_relu_device_harness.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

namespace densenet::kernels {
namespace {

using densenet::testing::tensors_close;
using densenet::testing::tensors_identical;

constexpr const char* kNoGpu =
    "no CUDA device (torch::cuda::is_available() is false): the CUDA kernels are not run here; "
    "bench/gpu/device_check.sh runs them on a GPU";

/// The kernels called directly, after checking that they take the tensors (else the dispatch
/// would run ATen's pieces for them and the comparison would prove nothing about the kernels).
testing::BnReluOps cuda_kernels() {
  testing::BnReluOps ops;
  ops.name = "CUDA kernels";
  ops.device = torch::kCUDA;
  ops.forward = [](const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                   const torch::Tensor& beta, torch::Tensor& out) {
    EXPECT_TRUE(cuda::takes({&x, &mean, &scale, &beta, &out}));
    cuda::bn_relu_forward(x, mean, scale, beta, out);
  };
  ops.backward = [](const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
                    const torch::Tensor& invstd, const torch::Tensor& gamma,
                    const torch::Tensor& beta, bool training, torch::Tensor& grad_x,
                    bool accumulate) {
    EXPECT_TRUE(cuda::takes({&grad_y, &x, &mean, &invstd, &gamma, &beta, &grad_x}));
    return cuda::bn_relu_backward(grad_y, x, mean, invstd, gamma, beta, training, grad_x,
                                  accumulate);
  };
  ops.backward_given_output = [](torch::Tensor& grad_y, const torch::Tensor& y,
                                 const torch::Tensor& x, const torch::Tensor& mean,
                                 const torch::Tensor& invstd, const torch::Tensor& gamma,
                                 bool training, torch::Tensor& grad_x, bool accumulate) {
    EXPECT_TRUE(cuda::takes({&grad_y, &y, &x, &mean, &invstd, &gamma, &grad_x}));
    return cuda::bn_relu_backward_given_output(grad_y, y, x, mean, invstd, gamma, training, grad_x,
                                               accumulate);
  };
  return ops;
}

class CudaKernelCase : public ::testing::TestWithParam<testing::DeviceCase> {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << kNoGpu;
  }
};

TEST_P(CudaKernelCase, MatchesTheCpuPath) {
  testing::check_against_cpu(cuda_kernels(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(OddShapes, CudaKernelCase, ::testing::ValuesIn(testing::odd_cases()),
                         [](const auto& info) { return info.param.name(); });
INSTANTIATE_TEST_SUITE_P(Realistic, CudaKernelCase, ::testing::ValuesIn(testing::realistic_cases()),
                         [](const auto& info) { return info.param.name(); });

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << kNoGpu;
  }
};

struct Layer {
  torch::Tensor buffer, x, mean, invstd, gamma, beta, scale, grad_y;
};

/// A layer input (N, C, H, W) as the prefix of a wider CUDA buffer, training statistics.
Layer cuda_layer(int64_t n, int64_t c, int64_t h, int64_t w, int64_t extra) {
  torch::manual_seed(17);
  const auto options = torch::TensorOptions().device(torch::kCUDA);
  Layer l;
  l.buffer = torch::randn({n, c + extra, h, w}, options) * 2 + 0.3;
  l.x = l.buffer.narrow(1, 0, c);
  auto [mean, var] = reference::channel_mean_var(l.x);
  l.mean = mean.to(torch::kFloat);
  l.invstd = (var + 1e-5).rsqrt().to(torch::kFloat);
  l.gamma = torch::rand({c}, options) + 0.5;
  l.beta = torch::randn({c}, options) * 0.2;
  l.scale = l.gamma * l.invstd;
  l.grad_y = torch::randn({n, c, h, w}, options);
  return l;
}

TEST_F(CudaKernels, DispatchTakesTheKernelsAndFallsBackToAtenPieces) {
  const Layer l = cuda_layer(4, 6, 5, 5, 3);
  torch::Tensor direct = torch::empty({4, 6, 5, 5}, l.x.options());
  cuda::bn_relu_forward(l.x, l.mean, l.scale, l.beta, direct);
  torch::Tensor dispatched = torch::empty_like(direct);
  bn_relu_forward(l.x, l.mean, l.scale, l.beta, dispatched);
  EXPECT_TRUE(tensors_identical("dispatched forward", dispatched, direct));

  // Planes that are not contiguous (channels last): ATen's pieces, with the same results.
  const torch::Tensor x_last = l.x.contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_FALSE(cuda::takes({&x_last, &l.mean, &l.scale, &l.beta, &dispatched}));
  bn_relu_forward(x_last, l.mean, l.scale, l.beta, dispatched);
  EXPECT_TRUE(tensors_close("forward of channels-last x", dispatched, direct, 1e-6));
  torch::Tensor grad_x = torch::empty_like(direct);
  auto [grad_gamma, grad_beta] = bn_relu_backward(l.grad_y, x_last, l.mean, l.invstd, l.gamma,
                                                  l.beta, /*training=*/true, grad_x, false);
  torch::Tensor expected = torch::empty_like(direct);
  auto [expected_gamma, expected_beta] = cuda::bn_relu_backward(
      l.grad_y, l.x, l.mean, l.invstd, l.gamma, l.beta, /*training=*/true, expected, false);
  EXPECT_TRUE(tensors_close("grad_x of channels-last x", grad_x, expected, 1e-5));
  EXPECT_TRUE(tensors_close("grad_gamma of channels-last x", grad_gamma, expected_gamma, 1e-5));
  const torch::Tensor x_cpu = l.x.cpu();
  EXPECT_FALSE(cuda::takes({&x_cpu, &l.mean, &l.scale, &l.beta, &direct}));  // one device only
}

TEST_F(CudaKernels, BackwardIsTheSameEveryRun) {
  // Sums reduced in a fixed order (no atomics): training resumes bit for bit on the GPU too.
  const Layer l = cuda_layer(32, 256, 14, 14, 128);
  auto run = [&] {
    torch::Tensor grad_x = torch::empty_like(l.grad_y);
    auto [grad_gamma, grad_beta] = cuda::bn_relu_backward(l.grad_y, l.x, l.mean, l.invstd, l.gamma,
                                                          l.beta, true, grad_x, false);
    return std::make_tuple(grad_x, grad_gamma, grad_beta);
  };
  const auto [x1, g1, b1] = run();
  const auto [x2, g2, b2] = run();
  EXPECT_TRUE(tensors_identical("grad_x", x2, x1));
  EXPECT_TRUE(tensors_identical("grad_gamma", g2, g1));
  EXPECT_TRUE(tensors_identical("grad_beta", b2, b1));
}

TEST_F(CudaKernels, EmptyBatchGivesZeroAffineGradients) {
  const auto options = torch::TensorOptions().device(torch::kCUDA);
  const torch::Tensor x = torch::empty({0, 4, 3, 3}, options), grad_y = torch::empty_like(x);
  const torch::Tensor p = torch::ones({4}, options);
  torch::Tensor grad_x = torch::empty_like(x);
  auto [grad_gamma, grad_beta] =
      cuda::bn_relu_backward(grad_y, x, p, p, p, p, /*training=*/true, grad_x, false);
  EXPECT_TRUE(tensors_identical("grad_gamma", grad_gamma.cpu(), torch::zeros({4})));
  EXPECT_TRUE(tensors_identical("grad_beta", grad_beta.cpu(), torch::zeros({4})));
}

}  // namespace
}  // namespace densenet::kernels

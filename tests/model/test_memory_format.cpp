// Channels-last (NHWC) weights and activations in memory mode naive: the same function and
// gradients as NCHW, and a clear refusal where the stages need NCHW planes.
#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"

#include "support/expect_error.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

namespace densenet {
namespace {

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(MemoryFormat, ChannelsLastComputesWhatNchwComputes) {
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const int64_t size : {12, 40}) {  // both stems
      torch::manual_seed(3);
      DenseNetOptions options = DenseNetOptions()
                                    .growth_rate(4)
                                    .block_config({2, 2})
                                    .num_init_features(8)
                                    .bn_size(2)
                                    .num_classes(5)
                                    .input_size(size)
                                    .memory(MemoryMode::kNaive);
      DenseNet nchw(options), nhwc(options);
      nchw->to(dtype);
      nhwc->to(dtype);
      load_state_dict(*nhwc, state_dict(*nchw));
      nhwc->set_memory_format(at::MemoryFormat::ChannelsLast);
      EXPECT_EQ(nhwc->memory_format(), at::MemoryFormat::ChannelsLast);
      EXPECT_TRUE(nhwc->features[0]->as<torch::nn::Conv2d>()->weight.is_contiguous(
          at::MemoryFormat::ChannelsLast));
      const torch::Tensor x = torch::randn({3, 3, size, size}, dtype);
      const torch::Tensor w = torch::randn({3, 5}, dtype);
      auto run = [&](DenseNet& model) {
        torch::Tensor input = x.clone().requires_grad_(true);
        torch::Tensor out = model->forward(input);
        (out * w).sum().backward();
        return std::make_pair(out.detach(), input.grad());
      };
      const auto [out_a, grad_a] = run(nchw);
      const auto [out_b, grad_b] = run(nhwc);
      // Different summation orders in the convolutions: float64 to 1e-12, float32 to 1e-4.
      const double tolerance = dtype == torch::kFloat64 ? 1e-12 : 1e-4;
      EXPECT_LT(max_abs(out_a, out_b), tolerance);
      EXPECT_LT(max_abs(grad_a, grad_b), tolerance);
      const auto params_a = nchw->named_parameters();
      const auto params_b = nhwc->named_parameters();
      for (const auto& item : params_a) {
        EXPECT_LT(max_abs(item.value().grad(), params_b[item.key()].grad()), tolerance)
            << item.key();
      }
      // Back to NCHW: the same weights, contiguous again.
      nhwc->set_memory_format(at::MemoryFormat::Contiguous);
      EXPECT_TRUE(nhwc->features[0]->as<torch::nn::Conv2d>()->weight.is_contiguous());
    }
  }
}

TEST(MemoryFormat, ChannelsLastIsRefusedWhereStagesNeedNchwPlanes) {
  for (const MemoryMode mode : {MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    DenseNet model(DenseNetOptions().growth_rate(4).block_config({2}).input_size(8).memory(mode));
    EXPECT_ERROR_CONTAINS(model->set_memory_format(at::MemoryFormat::ChannelsLast),
                          "channels-last applies to memory naive only");
    EXPECT_EQ(model->memory_format(), at::MemoryFormat::Contiguous);
  }
  DenseNet model(DenseNetOptions().growth_rate(4).block_config({2}).input_size(8));
  EXPECT_ERROR_CONTAINS(model->set_memory_format(at::MemoryFormat::ChannelsLast3d),
                        "memory format is Contiguous (NCHW) or ChannelsLast (NHWC)");
}

}  // namespace
}  // namespace densenet

#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace densenet {

/// Between two dense blocks: norm -> ReLU -> conv (1x1, C -> floor(theta*C)) -> 2x2 average
/// pool, with torchvision's names `norm` and `conv`.
class TransitionImpl : public torch::nn::Cloneable<TransitionImpl> {
 public:
  TransitionImpl(int64_t in_channels, int64_t out_channels);

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// (N, C, H, W) -> (N, C_out, H/2, W/2).
  torch::Tensor forward(const torch::Tensor& input);

  int64_t in_channels;
  int64_t out_channels;
  torch::nn::BatchNorm2d norm{nullptr};
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Transition);

}  // namespace densenet

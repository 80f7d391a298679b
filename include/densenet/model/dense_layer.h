#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace densenet {

struct DenseLayerOptions {
  DenseLayerOptions(int64_t in_channels, int64_t growth_rate)
      : in_channels_(in_channels), growth_rate_(growth_rate) {}
  /// C_l = C0 + l*k: width of the concatenated features this layer reads.
  TORCH_ARG(int64_t, in_channels);
  /// k: channels this layer adds.
  TORCH_ARG(int64_t, growth_rate);
  /// 0: plain layer; > 0: bottleneck of bn_size*k channels.
  TORCH_ARG(int64_t, bn_size) = 0;
  TORCH_ARG(double, drop_rate) = 0.0;
};

/// One dense layer, with torchvision's submodule names:
///   BC (bn_size > 0): norm1 -> relu -> conv1 (1x1, C_l -> B) -> norm2 -> relu -> conv2 (3x3, B ->
///   k) plain (bn_size 0): norm1 -> relu -> conv1 (3x3, C_l -> k)
/// then dropout. The layer that reads the concatenation is always norm1/conv1, so the
/// efficient modes treat both kinds alike.
class DenseLayerImpl : public torch::nn::Cloneable<DenseLayerImpl> {
 public:
  explicit DenseLayerImpl(const DenseLayerOptions& options);

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// input: (N, C_l, H, W), the concatenation of the block input and all earlier layers'
  /// outputs. Returns the new features, (N, k, H, W).
  torch::Tensor forward(const torch::Tensor& input);

  bool has_bottleneck() const { return options.bn_size() > 0; }

  DenseLayerOptions options;
  torch::nn::BatchNorm2d norm1{nullptr};
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d norm2{nullptr};  // BC layers only
  torch::nn::Conv2d conv2{nullptr};       // BC layers only
};
TORCH_MODULE(DenseLayer);

}  // namespace densenet

#pragma once

#include "densenet/model/dense_layer.h"
#include "densenet/model/options.h"

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace densenet {

struct DenseBlockOptions {
  DenseBlockOptions(int64_t num_layers, int64_t in_channels, int64_t growth_rate)
      : num_layers_(num_layers), in_channels_(in_channels), growth_rate_(growth_rate) {}
  TORCH_ARG(int64_t, num_layers);   // L
  TORCH_ARG(int64_t, in_channels);  // C0
  TORCH_ARG(int64_t, growth_rate);  // k
  TORCH_ARG(int64_t, bn_size) = 0;
  TORCH_ARG(double, drop_rate) = 0.0;
  TORCH_ARG(MemoryMode, memory) = MemoryMode::kNaive;
};

/// L dense layers named denselayer1..denselayerL; layer l reads the block input and the
/// outputs of layers 1..l-1, and the block returns all of them, (N, C0 + L*k, H, W).
class DenseBlockImpl : public torch::nn::Cloneable<DenseBlockImpl> {
 public:
  explicit DenseBlockImpl(const DenseBlockOptions& options);

  void reset() override;
  void pretty_print(std::ostream& stream) const override;

  /// input: (N, C0, H, W) -> (N, C0 + L*k, H, W).
  torch::Tensor forward(const torch::Tensor& input);

  int64_t out_channels() const {
    return options.in_channels() + options.num_layers() * options.growth_rate();
  }

  DenseBlockOptions options;
  std::vector<DenseLayer> layers;

 private:
  torch::Tensor forward_naive(const torch::Tensor& input);
};
TORCH_MODULE(DenseBlock);

}  // namespace densenet

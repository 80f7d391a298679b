#include "densenet/model/dense_block.h"

#include "model/dense_stage.h"

#include <c10/util/Exception.h>

namespace densenet {

DenseBlockImpl::DenseBlockImpl(const DenseBlockOptions& options_) : options(options_) {
  reset();
}

void DenseBlockImpl::reset() {
  layers.clear();
  for (int64_t l = 0; l < options.num_layers(); ++l) {
    DenseLayerOptions layer_options(options.in_channels() + l * options.growth_rate(),
                                    options.growth_rate());
    layer_options.bn_size(options.bn_size()).drop_rate(options.drop_rate());
    layers.push_back(
        register_module("denselayer" + std::to_string(l + 1), DenseLayer(layer_options)));
  }
}

void DenseBlockImpl::pretty_print(std::ostream& stream) const {
  stream << "densenet::DenseBlock(num_layers=" << options.num_layers()
         << ", in_channels=" << options.in_channels() << ", growth_rate=" << options.growth_rate()
         << ", bn_size=" << options.bn_size() << ", memory=" << memory_mode_name(options.memory())
         << ")";
}

torch::Tensor DenseBlockImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4 && input.size(1) == options.in_channels(),
              "dense block expects input of shape (N, ", options.in_channels(), ", H, W), got ",
              input.sizes());
  if (options.memory() == MemoryMode::kNaive) return forward_naive(input);
  return detail::run_dense_stage(*this, detail::StageTail::kNone, nullptr, nullptr, input);
}

torch::Tensor DenseBlockImpl::forward_naive(const torch::Tensor& input) {
  // Plain autograd, as torchvision: every layer concatenates its inputs again, so autograd
  // keeps L copies of growing width (memory quadratic in L).
  std::vector<torch::Tensor> features{input};  // (N, C0, H, W), then (N, k, H, W) each
  features.reserve(layers.size() + 1);
  for (auto& layer : layers) features.push_back(layer->forward(torch::cat(features, 1)));
  return torch::cat(features, 1);
}

}  // namespace densenet

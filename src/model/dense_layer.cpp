#include "densenet/model/dense_layer.h"

#include "model/batch_norm.h"

#include <torch/nn/functional/activation.h>

namespace densenet {

DenseLayerImpl::DenseLayerImpl(const DenseLayerOptions& options_) : options(options_) {
  reset();
}

void DenseLayerImpl::reset() {
  const int64_t c = options.in_channels();
  const int64_t k = options.growth_rate();
  norm1 = register_module("norm1", torch::nn::BatchNorm2d(c));
  if (has_bottleneck()) {
    const int64_t b = options.bn_size() * k;
    conv1 =
        register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, b, 1).bias(false)));
    norm2 = register_module("norm2", torch::nn::BatchNorm2d(b));
    conv2 = register_module(
        "conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(b, k, 3).padding(1).bias(false)));
  } else {
    conv1 = register_module(
        "conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(c, k, 3).padding(1).bias(false)));
  }
}

void DenseLayerImpl::pretty_print(std::ostream& stream) const {
  stream << "densenet::DenseLayer(in_channels=" << options.in_channels()
         << ", growth_rate=" << options.growth_rate() << ", bn_size=" << options.bn_size()
         << ", drop_rate=" << options.drop_rate() << ")";
}

torch::Tensor DenseLayerImpl::forward(const torch::Tensor& input) {
  // detail::batch_norm: norm1(x), or sync-bn's global-batch statistics inside DenseNet::forward.
  torch::Tensor out = conv1(detail::batch_norm(*norm1, input).relu_());        // (N, B or k, H, W)
  if (has_bottleneck()) out = conv2(detail::batch_norm(*norm2, out).relu_());  // (N, k, H, W)
  if (options.drop_rate() > 0.0 && is_training()) {
    // ATen's dropout on the CPU, spelled out: on CUDA torch::dropout draws through a fused
    // kernel with its own random stream, and the efficient modes (which keep the mask as bytes)
    // could not draw the same mask. Same distribution, same masks on every device.
    const double keep = 1.0 - options.drop_rate();
    out = out * torch::empty_like(out).bernoulli_(keep).div_(keep);
  }
  return out;
}

}  // namespace densenet

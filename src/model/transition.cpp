#include "densenet/model/transition.h"

#include "model/batch_norm.h"

#include <torch/nn/functional/pooling.h>

namespace densenet {

TransitionImpl::TransitionImpl(int64_t in_channels_, int64_t out_channels_)
    : in_channels(in_channels_), out_channels(out_channels_) {
  reset();
}

void TransitionImpl::reset() {
  norm = register_module("norm", torch::nn::BatchNorm2d(in_channels));
  conv = register_module(
      "conv",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1).bias(false)));
}

void TransitionImpl::pretty_print(std::ostream& stream) const {
  stream << "densenet::Transition(in_channels=" << in_channels << ", out_channels=" << out_channels
         << ")";
}

torch::Tensor TransitionImpl::forward(const torch::Tensor& input) {
  return torch::avg_pool2d(conv(detail::batch_norm(*norm, input).relu_()), /*kernel_size=*/{2, 2},
                           /*stride=*/{2, 2});
}

}  // namespace densenet

#pragma once

#include "densenet/io/state_dict.h"
#include "densenet/model/options.h"

#include <string>

namespace densenet::cli {

/// Why weights (torchvision keys) cannot fit a model with `options`, in the user's terms:
/// "the weights have the imagenet stem (7x7 conv) but the model the cifar stem (3x3): add
/// --stem imagenet", and likewise for input channels, stem channels and classes. "" when
/// none of these explains the mismatch.
std::string architecture_mismatch_hint(const StateDict& weights, const DenseNetOptions& options);

}  // namespace densenet::cli

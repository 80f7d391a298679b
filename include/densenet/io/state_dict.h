#pragma once

#include <torch/nn/module.h>
#include <torch/ordered_dict.h>
#include <torch/types.h>

#include <string>

namespace densenet {

/// Name -> tensor, in insertion order.
using StateDict = torch::OrderedDict<std::string, torch::Tensor>;

/// Parameters and buffers of `module` under PyTorch's `state_dict()` names and in its order
/// (per module: parameters, then buffers, then children, depth first). The tensors alias the
/// module's storage; clone them to keep a snapshot.
StateDict state_dict(const torch::nn::Module& module);

/// Copies `state` into `module`'s parameters and buffers (converting dtype and device as
/// `load_state_dict` in PyTorch does). With `strict`, missing keys, unexpected keys and shape
/// mismatches are reported in one c10::Error and nothing is copied: one line, then one
/// indented line per kind with its count and the first two ("missing keys (200): a, b and 198
/// more"); without it, matching keys are copied and the rest is ignored (shape mismatches are
/// still errors). When no key matches
/// but a prefix on every key of one side would make them all match (weights saved from a
/// wrapper module, e.g. "backbone."), the error says so in one line instead.
void load_state_dict(torch::nn::Module& module, const StateDict& state, bool strict = true);

}  // namespace densenet

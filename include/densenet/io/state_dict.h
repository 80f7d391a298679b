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

/// The prefix that every key of `weights` carries (a wrapper module's name, e.g. "backbone.")
/// and that, stripped, leaves `weights` with exactly the keys of `model` once `rename` is
/// applied to the stripped state (a caller's own renaming, such as the final norm's name; none
/// by default). "" when there is none.
std::string wrapper_prefix(const StateDict& weights, const StateDict& model,
                           StateDict (*rename)(const StateDict&,
                                               const torch::nn::Module&) = nullptr,
                           const torch::nn::Module* module = nullptr);

/// The one sentence every loader gives for weights whose keys all carry `prefix`: "every key in
/// the weights starts with 'backbone.' (e.g. 'backbone.features.conv0.weight'), and without it
/// all 62 keys match the model; strip that prefix from the keys".
std::string wrapper_prefix_hint(const StateDict& weights, const std::string& prefix);

/// The floating-point tensors of `state` that hold a NaN or an infinity, described for an error:
/// "features.norm0.running_var has 1 non-finite value (NaN or infinity) of 64" plus ", and 2
/// more tensors have some" when others do; "" when every value is finite.
std::string non_finite_summary(const StateDict& state);

}  // namespace densenet

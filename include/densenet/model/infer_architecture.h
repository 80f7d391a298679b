#pragma once

#include "densenet/io/state_dict.h"
#include "densenet/model/options.h"

#include <string>
#include <utility>
#include <vector>

namespace densenet {

/// The DenseNet whose state dict `weights` is, read from its tensor shapes (torchvision's keys:
/// apply to_torchvision_keys first to read the efficient projects' layouts and legacy keys):
///   stem               features.conv0.weight's kernel: 7 imagenet, 3 cifar
///   in_channels        conv0.weight (num_init_features, in_channels, k, k)
///   num_init_features  conv0.weight's first dimension
///   block_config       the denselayerL of each features.denseblockB
///   growth_rate        a layer's last convolution's outputs (conv2, or conv1 without a bottleneck)
///   bn_size            conv1's outputs / growth rate with a bottleneck (conv2); 0 without
///   compression        theta with floor(theta * in) = out for every transition's conv (the
///                      shortest decimal that fits; 1 for a single block, which has none)
///   num_classes        classifier.weight (num_classes, channels)
/// input_size is the stem's nominal size (32 cifar, 224 imagenet); drop_rate and memory keep
/// their defaults (the weights do not say). Throws c10::Error naming the first key that is
/// missing or has a shape no DenseNet gives it.
DenseNetOptions infer_architecture(const StateDict& weights);

/// One field in which two architectures differ, named as the flag (and config key) that sets it.
struct ArchitectureDifference {
  std::string key;            // "growth-rate", "block-config", ...
  std::string first, second;  // the values, e.g. "6" and "12", "2,2,2" and "16,16,16"
};

/// The fields that decide a state dict's keys and shapes (stem, in-channels, num-init-features,
/// growth-rate, block-config, bn-size, compression, num-classes, in that order) in which `first`
/// and `second` differ; compression only when both have transitions.
std::vector<ArchitectureDifference> architecture_differences(const DenseNetOptions& first,
                                                             const DenseNetOptions& second);

/// The shortest list of overrides (key, value) that turn `from` into `to`'s architecture, in
/// apply_overrides' terms: a new growth rate moves a bottleneck model's stem to 2k, so
/// num-init-features is listed only when that rule does not already give `to`'s.
std::vector<std::pair<std::string, std::string>> overrides_between(const DenseNetOptions& from,
                                                                   const DenseNetOptions& to);

/// {{"growth-rate", "6"}, {"block-config", "2,2,2"}} -> "--growth-rate 6 --block-config 2,2,2".
std::string format_overrides(const std::vector<std::pair<std::string, std::string>>& overrides);

/// The preset that needs the fewest overrides to become `options` (on a tie `prefer`, else the
/// first in presets()'s order), and those overrides (none: `options` is that preset).
struct PresetMatch {
  std::string preset;
  std::vector<std::pair<std::string, std::string>> overrides;
};
PresetMatch nearest_preset(const DenseNetOptions& options, const std::string& prefer = "");

/// `options` in the user's terms: the preset it is ("densenet121"), or the preset that needs the
/// fewest overrides (nearest_preset, `prefer` on a tie) with them ("densenet-bc-100 with
/// --block-config 2,2,2 --growth-rate 6"), or, when every preset needs more than three, each field
/// ("a DenseNet with stem cifar, in-channels 1, ...").
std::string describe_architecture(const DenseNetOptions& options, const std::string& prefer = "");

}  // namespace densenet

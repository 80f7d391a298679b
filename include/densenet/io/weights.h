#pragma once

#include "densenet/io/pth_value.h"
#include "densenet/io/state_dict.h"

#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace densenet {

/// How a checkpoint names a DenseNet's tensors: the layouts `convert --to` writes and every
/// reader accepts.
enum class KeyLayout {
  /// torchvision's current names (= this library's, but for the final norm): denselayer1.norm1.*,
  /// the final batch norm features.norm5 whatever the number of blocks.
  Torchvision,
  /// gpleiss/efficient_densenet_pytorch (Pleiss et al.'s project, models/densenet.py at d2d0629):
  /// torchvision's names, the final batch norm features.norm_final.
  Gpleiss,
  /// wandering007/efficient-densenet-pytorch (models/densenet.py and efficient_utils.py at
  /// abfa84f): a dense layer's first norm and conv as one module, bottleneck.norm_weight,
  /// norm_bias, norm_running_mean, norm_running_var, norm_num_batches_tracked (since December
  /// 2018; read with or without it), conv_weight; the final batch norm features.norm{blocks+1}.
  Wandering007,
};

/// "torchvision", "gpleiss" or "wandering007" ("efficient-pytorch" and "efficient", the older
/// names of wandering007's layout, are accepted too). Anything else is a c10::Error listing them.
KeyLayout parse_key_layout(const std::string& name);

/// The name `parse_key_layout` accepts for `layout`, e.g. "wandering007".
const char* key_layout_name(KeyLayout layout);

/// Every layout's name, comma-separated, for help texts and errors.
std::string key_layout_names();

/// What the checkpoint readers cannot read, in one paragraph for `--help` texts and docs.
const char* checkpoint_format_limits();

/// The state dict inside a checkpoint: the root when it is a dict of tensors, otherwise the
/// dict of tensors under "state_dict", "model_state_dict" or "model" (the wrappers training
/// scripts write: {epoch, state_dict, optimizer, ...}). `path` is the key it was under (empty
/// for the root). Throws c10::Error listing the top-level keys when there is none.
struct LocatedStateDict {
  pth::Value dict;
  std::string path;
};
LocatedStateDict locate_state_dict(const pth::Value& root, const std::string& source);

/// The tensors of a state-dict Value, in order; a non-tensor value is an error naming its key.
StateDict tensors_of(const pth::Value& state_dict, const std::string& source);

/// Renames keys to torchvision's current names, which this library uses: strips a prefix that
/// every key carries, "module." (DataParallel/DistributedDataParallel), "_orig_mod."
/// (torch.compile) or "model." (training wrappers), rewrites torchvision's legacy keys
/// (denselayer1.norm.1.weight -> denselayer1.norm1.weight, by torchvision's own regular
/// expression), wandering007's bottleneck (bottleneck.norm_weight -> norm1.weight,
/// bottleneck.conv_weight -> conv1.weight) and the final batch norm (gpleiss's norm_final and
/// wandering007's norm{blocks+1} -> norm5), and adds num_batches_tracked = 0 to every batch norm
/// that lacks it, as PyTorch's BatchNorm does when it loads an old checkpoint. Two keys that map
/// to one name are an error.
StateDict to_torchvision_keys(const StateDict& state);

/// torchvision names -> wandering007's layout: a dense layer's norm1.* and conv1.* become
/// bottleneck.norm_* and bottleneck.conv_* (num_batches_tracked included, as its current
/// EfficientDensenetBottleneck has it), features.norm5 becomes features.norm{blocks+1}.
StateDict to_efficient_pytorch_keys(const StateDict& torchvision_state);

/// torchvision names -> `layout`'s names (the inverse of to_torchvision_keys for that layout).
StateDict from_torchvision_keys(const StateDict& torchvision_state, KeyLayout layout);

/// A state dict as the OrderedDict Value torch.save writes, attributes (`_metadata`) copied
/// from `attributes_from` when it is a dict.
pth::Value state_dict_value(const StateDict& tensors, const pth::Value& attributes_from = {});

/// What a weights file holds, recognised by content: a .pth (zip or legacy) as loaded, or a
/// .safetensors file as an OrderedDict of its tensors.
struct WeightsFile {
  pth::Value root;
  std::string format;  // "zip", "legacy" or "safetensors"
};
WeightsFile read_weights_file(const std::string& path);

/// The weights in `path` (.pth in zip or legacy format, or .safetensors), with
/// to_torchvision_keys applied.
StateDict read_weights(const std::string& path);

/// torchvision calls the final batch norm features.norm5 whatever the number of blocks;
/// wandering007's project (and this library) calls it norm{blocks + 1}. Renames norm5 to the
/// name `model` uses when the weights have only the former.
StateDict fit_final_norm_name(const StateDict& weights, const torch::nn::Module& model);

/// read_weights + fit_final_norm_name + load_state_dict: strict by default, counting the missing,
/// unexpected and mismatched keys in one short error (or, when a prefix on every key explains
/// the mismatch, saying so in one line). For a DenseNet, load_densenet_weights
/// (densenet/model/load_weights.h) says instead which architecture the weights are.
void load_weights(torch::nn::Module& model, const std::string& path, bool strict = true);

}  // namespace densenet

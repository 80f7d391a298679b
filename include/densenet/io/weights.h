#pragma once

#include "densenet/io/pth_value.h"
#include "densenet/io/state_dict.h"

#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace densenet {

/// How a checkpoint names a DenseNet's tensors.
enum class KeyLayout {
  Torchvision,       // torchvision's current names (= this library's): denselayer1.norm1.weight
  EfficientPytorch,  // the original project's efficient layer: denselayer1.bottleneck.norm_weight
};

KeyLayout parse_key_layout(const std::string& name);  // "torchvision" | "efficient-pytorch"

/// The name `parse_key_layout` accepts for `layout`, e.g. "efficient-pytorch".
const char* key_layout_name(KeyLayout layout);

/// Every layout's name, comma-separated, for help texts and errors.
std::string key_layout_names();

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

/// Renames keys to torchvision's current names, which this library uses: strips the "module."
/// prefix of DataParallel/DistributedDataParallel (and "_orig_mod." of torch.compile), rewrites
/// torchvision's legacy keys (denselayer1.norm.1.weight -> denselayer1.norm1.weight, by
/// torchvision's own regular expression) and the original project's efficient layout
/// (bottleneck.norm_weight -> norm1.weight, bottleneck.conv_weight -> conv1.weight), and adds
/// num_batches_tracked = 0 to every batch norm that lacks it, as PyTorch's BatchNorm does when
/// it loads an old checkpoint. Two keys that map to one name are an error.
StateDict to_torchvision_keys(const StateDict& state);

/// torchvision names -> the original project's efficient layout: a dense layer's norm1.* and
/// conv1.* become bottleneck.norm_* and bottleneck.conv_* (its module has no
/// num_batches_tracked, so norm1.num_batches_tracked is dropped).
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

/// torchvision calls the final batch norm features.norm5 whatever the number of blocks; the
/// original project (and this library) calls it norm{blocks + 1}. Renames norm5 to the name
/// `model` uses when the weights have only the former.
StateDict fit_final_norm_name(const StateDict& weights, const torch::nn::Module& model);

/// read_weights + fit_final_norm_name + load_state_dict: strict by default, listing every missing,
/// unexpected and mismatched key in one error.
void load_weights(torch::nn::Module& model, const std::string& path, bool strict = true);

}  // namespace densenet

#include "densenet/io/weights.h"

#include "densenet/io/atomic_file.h"
#include "densenet/io/pth_file.h"
#include "densenet/io/safetensors.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <regex>
#include <sstream>

namespace densenet {

namespace {

bool is_tensor_dict(const pth::Value& value) {
  if (!value.is(pth::Value::Kind::Dict) || value.items().empty()) return false;
  for (const auto& item : value.items()) {
    if (!item.first.is(pth::Value::Kind::String) || !item.second.is(pth::Value::Kind::Tensor)) {
      return false;
    }
  }
  return true;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Strips a prefix that every key carries.
StateDict strip_common_prefix(const StateDict& state) {
  for (const std::string prefix : {"module.", "_orig_mod.", "model."}) {
    bool all = !state.is_empty();
    for (const auto& item : state) all = all && starts_with(item.key(), prefix);
    if (!all) continue;
    StateDict stripped;
    for (const auto& item : state) stripped.insert(item.key().substr(prefix.size()), item.value());
    return strip_common_prefix(stripped);
  }
  return state;
}

// The number of dense blocks: the largest N of a features.denseblockN key (0 for none).
int dense_blocks(const StateDict& state) {
  static const std::regex block(R"(^features\.denseblock(\d+)\.)");
  int blocks = 0;
  for (const auto& item : state) {
    std::smatch match;
    if (std::regex_search(item.key(), match, block)) {
      blocks = std::max(blocks, std::stoi(match[1].str()));
    }
  }
  return blocks;
}

// The final batch norm's name in a state dict: "norm5" (torchvision), "norm_final" (gpleiss) or
// "norm{blocks+1}" (wandering007, this library); empty when there is none.
std::string final_norm_name(const StateDict& state) {
  const int blocks = dense_blocks(state);
  if (blocks == 0) return "";
  for (const std::string& name :
       {std::string("norm5"), std::string("norm_final"), "norm" + std::to_string(blocks + 1)}) {
    if (state.find("features." + name + ".weight") != nullptr) return name;
  }
  return "";
}

// Renames the final batch norm features.<old>.* to features.<name>.*, keeping the order.
StateDict rename_final_norm(const StateDict& state, const std::string& name) {
  const std::string old_name = final_norm_name(state);
  if (old_name.empty() || old_name == name) return state;
  const std::string from = "features." + old_name + ".";
  StateDict renamed;
  for (const auto& item : state) {
    const bool final = starts_with(item.key(), from);
    TORCH_CHECK(final || !starts_with(item.key(), "features." + name + "."), "checkpoint keys '",
                item.key(), "' and features.", old_name,
                ".* both name the final batch norm; the file mixes key layouts");
    renamed.insert(final ? "features." + name + "." + item.key().substr(from.size()) : item.key(),
                   item.value());
  }
  return renamed;
}

void insert_unique(StateDict& out, const std::string& key, const torch::Tensor& value,
                   const std::string& original) {
  TORCH_CHECK(out.find(key) == nullptr, "checkpoint keys '", original,
              "' and another both map to '", key, "'; the file mixes key layouts");
  out.insert(key, value);
}

}  // namespace

KeyLayout parse_key_layout(const std::string& name) {
  if (name == "torchvision") return KeyLayout::Torchvision;
  if (name == "gpleiss") return KeyLayout::Gpleiss;
  if (name == "wandering007" || name == "efficient-pytorch" || name == "efficient") {
    return KeyLayout::Wandering007;
  }
  TORCH_CHECK(false, "unknown key layout '", name, "': use one of ", key_layout_names());
}

const char* key_layout_name(KeyLayout layout) {
  switch (layout) {
    case KeyLayout::Torchvision:
      return "torchvision";
    case KeyLayout::Gpleiss:
      return "gpleiss";
    case KeyLayout::Wandering007:
      return "wandering007";
  }
  TORCH_INTERNAL_ASSERT(false, "unknown KeyLayout");
}

std::string key_layout_names() {
  std::string names;
  for (const KeyLayout layout :
       {KeyLayout::Torchvision, KeyLayout::Gpleiss, KeyLayout::Wandering007}) {
    names += (names.empty() ? "" : ", ") + std::string(key_layout_name(layout));
  }
  return names;
}

const char* checkpoint_format_limits() {
  return "Checkpoints: torch.save's zip format and its legacy format (any pickle protocol), and "
         "safetensors; keys of torchvision (current and legacy), gpleiss and wandering007 "
         "(efficient-densenet projects), with a module., _orig_mod. or model. prefix. Refused: "
         "PyTorch's tar format (before 0.1.10), TorchScript archives, re-compressed zip entries, "
         "big-endian files, and pickles that name code (os, subprocess, eval, ...). Other "
         "Python objects beside the weights (argparse.Namespace, numpy scalars) are kept as "
         "opaque values, never run, with a warning.";
}

StateDict from_torchvision_keys(const StateDict& torchvision_state, KeyLayout layout) {
  switch (layout) {
    case KeyLayout::Torchvision:
      return torchvision_state;
    case KeyLayout::Gpleiss:
      return rename_final_norm(torchvision_state, "norm_final");
    case KeyLayout::Wandering007:
      return to_efficient_pytorch_keys(torchvision_state);
  }
  TORCH_INTERNAL_ASSERT(false, "unknown KeyLayout");
}

LocatedStateDict locate_state_dict(const pth::Value& root, const std::string& source) {
  if (is_tensor_dict(root)) return {root, ""};
  if (root.is(pth::Value::Kind::Dict)) {
    for (const std::string key : {"state_dict", "model_state_dict", "model"}) {
      const pth::Value* candidate = root.find(key);
      if (candidate != nullptr && is_tensor_dict(*candidate)) return {*candidate, key};
    }
    std::ostringstream keys;
    for (const auto& item : root.items()) {
      keys << (keys.tellp() > 0 ? ", " : "")
           << (item.first.is(pth::Value::Kind::String) ? item.first.as_string()
                                                       : item.first.type_name())
           << " (" << item.second.type_name() << ")";
    }
    TORCH_CHECK(false, "cannot find a state dict in '", source, "': its top level holds ",
                keys.str(),
                "; expected a dict of tensors, or one under 'state_dict', 'model_state_dict' or "
                "'model'");
  }
  TORCH_CHECK(false, "cannot find a state dict in '", source, "': it holds a ", root.type_name(),
              ", not a dict of tensors");
}

StateDict tensors_of(const pth::Value& state_dict, const std::string& source) {
  StateDict tensors;
  for (const auto& item : state_dict.items()) {
    TORCH_CHECK(item.first.is(pth::Value::Kind::String), "state dict in '", source,
                "' has a key of type ", item.first.type_name());
    TORCH_CHECK(item.second.is(pth::Value::Kind::Tensor), "state dict entry '",
                item.first.as_string(), "' in '", source, "' is a ", item.second.type_name(),
                ", not a tensor");
    tensors.insert(item.first.as_string(), item.second.as_tensor());
  }
  return tensors;
}

StateDict to_torchvision_keys(const StateDict& state) {
  // torchvision/models/densenet.py's _load_state_dict pattern.
  static const std::regex legacy(
      R"(^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$)");
  static const std::regex efficient(
      R"(^(.*denselayer\d+)\.bottleneck\.(norm|conv)_(weight|bias|running_mean|running_var|num_batches_tracked)$)");
  StateDict renamed;
  for (const auto& item : strip_common_prefix(state)) {
    std::smatch match;
    std::string key = item.key();
    if (std::regex_match(item.key(), match, legacy)) {
      key = match[1].str() + match[2].str();
    } else if (std::regex_match(item.key(), match, efficient)) {
      key = match[1].str() + "." + match[2].str() + "1." + match[3].str();
    }
    insert_unique(renamed, key, item.value(), item.key());
  }
  // Batch norms saved before PyTorch 0.4.1 (or by modules without it) lack num_batches_tracked;
  // BatchNorm's loader adds a zero, right after running_var where the state dict has it.
  renamed = rename_final_norm(renamed, "norm5");
  StateDict completed;
  for (const auto& item : renamed) {
    completed.insert(item.key(), item.value());
    if (!ends_with(item.key(), ".running_var")) continue;
    const std::string prefix = item.key().substr(0, item.key().size() - 11);
    const std::string counter = prefix + "num_batches_tracked";
    if (renamed.find(prefix + "running_mean") != nullptr && renamed.find(counter) == nullptr) {
      completed.insert(counter, torch::zeros({}, torch::kInt64));
    }
  }
  return completed;
}

StateDict to_efficient_pytorch_keys(const StateDict& torchvision_state) {
  static const std::regex first_layer(
      R"(^(.*denselayer\d+)\.(norm|conv)1\.(weight|bias|running_mean|running_var|num_batches_tracked)$)");
  StateDict renamed;
  for (const auto& item : torchvision_state) {
    std::smatch match;
    if (!std::regex_match(item.key(), match, first_layer)) {
      insert_unique(renamed, item.key(), item.value(), item.key());
      continue;
    }
    insert_unique(renamed, match[1].str() + ".bottleneck." + match[2].str() + "_" + match[3].str(),
                  item.value(), item.key());
  }
  return rename_final_norm(renamed, "norm" + std::to_string(dense_blocks(renamed) + 1));
}

pth::Value state_dict_value(const StateDict& tensors, const pth::Value& attributes_from) {
  pth::Value dict = pth::Value::dict({}, /*ordered=*/true);
  for (const auto& item : tensors) {
    dict.set_item(pth::Value::string(item.key()), pth::Value::tensor(item.value()));
  }
  if (attributes_from.is(pth::Value::Kind::Dict)) dict.attributes() = attributes_from.attributes();
  return dict;
}

WeightsFile read_weights_file(const std::string& path) {
  const std::string bytes = read_file(path);
  if (looks_like_safetensors(bytes)) {
    return {state_dict_value(parse_safetensors(bytes, path).tensors), "safetensors"};
  }
  pth::Checkpoint checkpoint = pth::parse_checkpoint(bytes, path);
  return {checkpoint.root, checkpoint.format == pth::Format::Zip ? "zip" : "legacy"};
}

StateDict read_weights(const std::string& path) {
  const LocatedStateDict located = locate_state_dict(read_weights_file(path).root, path);
  return to_torchvision_keys(tensors_of(located.dict, path));
}

StateDict fit_final_norm_name(const StateDict& weights, const torch::nn::Module& model) {
  // wandering007's project names the final batch norm norm{blocks + 1}; torchvision always
  // calls it norm5. With four blocks they agree; otherwise a torchvision file's norm5 is our
  // norm{B+1}.
  static const std::regex final_norm(R"(^features\.norm(\d+)\.)");
  int expected = -1;
  for (const auto& item : state_dict(model)) {
    std::smatch match;
    if (std::regex_search(item.key(), match, final_norm)) {
      expected = std::max(expected, std::stoi(match[1].str()));
    }
  }
  if (expected < 0 || expected == 5) return weights;
  const std::string ours = "features.norm" + std::to_string(expected) + ".";
  const std::string theirs = "features.norm5.";
  bool has_ours = false, has_theirs = false;
  for (const auto& item : weights) {
    has_ours = has_ours || starts_with(item.key(), ours);
    has_theirs = has_theirs || starts_with(item.key(), theirs);
  }
  if (has_ours || !has_theirs) return weights;
  StateDict renamed;
  for (const auto& item : weights) {
    renamed.insert(
        starts_with(item.key(), theirs) ? ours + item.key().substr(theirs.size()) : item.key(),
        item.value());
  }
  return renamed;
}

void load_weights(torch::nn::Module& model, const std::string& path, bool strict) {
  const StateDict weights = fit_final_norm_name(read_weights(path), model);
  try {
    load_state_dict(model, weights, strict);
  } catch (const c10::Error& error) {
    TORCH_CHECK(false, "weights in '", path,
                "' do not fit the model: ", error.what_without_backtrace());
  }
}

}  // namespace densenet

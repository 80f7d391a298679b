#include "densenet/io/state_dict.h"

#include <c10/util/Exception.h>
#include <torch/utils.h>

#include <sstream>
#include <vector>

namespace densenet {

namespace {

void collect(const torch::nn::Module& module, const std::string& prefix, StateDict& out) {
  for (const auto& item : module.named_parameters(/*recurse=*/false)) {
    out.insert(prefix + item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/false)) {
    out.insert(prefix + item.key(), item.value());
  }
  for (const auto& child : module.named_children()) {
    collect(*child.value(), prefix + child.key() + ".", out);
  }
}

// A few keys name the problem; the rest are counted, so that the error stays a line and a
// short indented detail (a densenet169 model given densenet121 weights misses 200 keys).
constexpr size_t kMaxListedProblems = 2;

void list_problems(std::ostringstream& message, const char* title,
                   const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  message << "\n  " << title << " (" << problems.size() << "): ";
  for (size_t i = 0; i < problems.size() && i < kMaxListedProblems; ++i) {
    message << (i > 0 ? ", " : "") << problems[i];
  }
  if (problems.size() > kMaxListedProblems) {
    message << " and " << problems.size() - kMaxListedProblems << " more";
  }
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// A prefix that every key of `longer` carries and that, stripped, turns its keys into exactly
// `shorter`'s; empty when there is none. Tried for each key of `longer` that ends in shorter's
// first key, so this costs O(keys) per candidate.
std::string explaining_prefix(const StateDict& longer, const StateDict& shorter) {
  if (longer.is_empty() || longer.size() != shorter.size()) return "";
  const std::string& anchor = shorter.begin()->key();
  for (const auto& item : longer) {
    const std::string& key = item.key();
    if (key.size() <= anchor.size() + 1 ||
        key.compare(key.size() - anchor.size(), anchor.size(), anchor) != 0 ||
        key[key.size() - anchor.size() - 1] != '.') {
      continue;
    }
    const std::string prefix = key.substr(0, key.size() - anchor.size());
    bool all = true;
    for (const auto& other : longer) {
      all = all && starts_with(other.key(), prefix) &&
            shorter.find(other.key().substr(prefix.size())) != nullptr;
      if (!all) break;
    }
    if (all) return prefix;
  }
  return "";
}

}  // namespace

StateDict state_dict(const torch::nn::Module& module) {
  StateDict out;
  collect(module, "", out);
  return out;
}

void load_state_dict(torch::nn::Module& module, const StateDict& state, bool strict) {
  StateDict own = state_dict(module);
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& item : own) {
    const torch::Tensor* given = state.find(item.key());
    if (given == nullptr) {
      missing.push_back(item.key());
    } else if (given->sizes() != item.value().sizes()) {
      std::ostringstream line;
      line << item.key() << ": file has " << given->sizes() << ", model has "
           << item.value().sizes();
      mismatched.push_back(line.str());
    }
  }
  for (const auto& item : state) {
    if (own.find(item.key()) == nullptr) unexpected.push_back(item.key());
  }
  const bool key_problems = strict && (!missing.empty() || !unexpected.empty());
  if (key_problems && mismatched.empty() && missing.size() == own.size()) {
    // Every key missed: a prefix on one side (a wrapper module's name) may explain all of it.
    if (const std::string prefix = explaining_prefix(state, own); !prefix.empty()) {
      TORCH_CHECK(false, "cannot load state dict into ", module.name(), ": ",
                  wrapper_prefix_hint(state, prefix));
    }
    if (const std::string prefix = explaining_prefix(own, state); !prefix.empty()) {
      TORCH_CHECK(false, "cannot load state dict into ", module.name(),
                  ": every key of the model starts with '", prefix, "' (e.g. '", own.begin()->key(),
                  "') and the weights' keys lack it, though otherwise all ", state.size(),
                  " match; add that prefix to the keys");
    }
  }
  if (key_problems || !mismatched.empty()) {
    std::ostringstream message;
    message << "cannot load state dict into " << module.name() << ":";
    if (strict) {
      list_problems(message, "missing keys", missing);
      list_problems(message, "unexpected keys", unexpected);
    }
    list_problems(message, "shape mismatches", mismatched);
    TORCH_CHECK(false, message.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& item : own) {
    if (const torch::Tensor* given = state.find(item.key())) item.value().copy_(*given);
  }
}

std::string wrapper_prefix(const StateDict& weights, const StateDict& model,
                           StateDict (*rename)(const StateDict&, const torch::nn::Module&),
                           const torch::nn::Module* module) {
  if (rename == nullptr) return explaining_prefix(weights, model);
  // The renaming (the final norm's name) applies to the stripped keys only, so each candidate
  // prefix is stripped, renamed, then compared.
  if (model.is_empty() || weights.size() != model.size()) return "";
  const std::string& anchor = model.begin()->key();
  for (const auto& item : weights) {
    const std::string& key = item.key();
    if (key.size() <= anchor.size() + 1 ||
        key.compare(key.size() - anchor.size(), anchor.size(), anchor) != 0) {
      continue;
    }
    const std::string prefix = key.substr(0, key.size() - anchor.size());
    StateDict stripped;
    for (const auto& other : weights) {
      if (!starts_with(other.key(), prefix) ||
          stripped.contains(other.key().substr(prefix.size()))) {
        return "";
      }
      stripped.insert(other.key().substr(prefix.size()), other.value());
    }
    const StateDict renamed = rename(stripped, *module);
    bool all = true;
    for (const auto& other : renamed) all = all && model.find(other.key()) != nullptr;
    return all ? prefix : "";
  }
  return "";
}

std::string wrapper_prefix_hint(const StateDict& weights, const std::string& prefix) {
  std::ostringstream out;
  out << "every key in the weights starts with '" << prefix << "' (e.g. '" << weights.begin()->key()
      << "'), and without it all " << weights.size()
      << " keys match the model; strip that prefix from the keys";
  return out.str();
}

std::string non_finite_summary(const StateDict& state) {
  std::ostringstream out;
  int64_t others = 0;
  for (const auto& item : state) {
    if (!item.value().is_floating_point() && !item.value().is_complex()) continue;
    const int64_t bad = item.value().isfinite().logical_not().sum().item<int64_t>();
    if (bad == 0) continue;
    if (out.tellp() > 0) {
      ++others;
      continue;
    }
    out << item.key() << " has " << bad << " non-finite value" << (bad == 1 ? "" : "s")
        << " (NaN or infinity) of " << item.value().numel();
  }
  if (others > 0) {
    out << ", and " << others << " more tensor" << (others == 1 ? " has" : "s have") << " some";
  }
  return out.str();
}

}  // namespace densenet

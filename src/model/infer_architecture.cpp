#include "densenet/model/infer_architecture.h"

#include "densenet/model/presets.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <sstream>

namespace densenet {

namespace {

// The tensor under `key`, checked to have `dims` dimensions.
const torch::Tensor& shaped(const StateDict& weights, const std::string& key, int64_t dims) {
  const torch::Tensor* tensor = weights.find(key);
  TORCH_CHECK(tensor != nullptr, "cannot read a DenseNet from the weights: no '", key, "'");
  TORCH_CHECK(tensor->dim() == dims, "cannot read a DenseNet from the weights: '", key, "' has ",
              tensor->dim(), " dimensions, not ", dims);
  return *tensor;
}

// Layers per block from the features.denseblockB.denselayerL keys: blocks 1..B, layers 1..L.
std::vector<int64_t> layers_per_block(const StateDict& weights) {
  // At most 9 digits: a larger index is no DenseNet's (and would overflow stoll).
  static const std::regex layer(R"(^features\.denseblock(\d{1,9})\.denselayer(\d{1,9})\.)");
  std::map<int64_t, int64_t> layers;  // block -> largest layer index
  for (const auto& item : weights) {
    std::smatch match;
    if (!std::regex_search(item.key(), match, layer)) continue;
    int64_t& most = layers[std::stoll(match[1].str())];
    most = std::max<int64_t>(most, std::stoll(match[2].str()));
  }
  TORCH_CHECK(!layers.empty(),
              "cannot read a DenseNet from the weights: no features.denseblock keys");
  std::vector<int64_t> blocks;
  for (const auto& [block, count] : layers) {
    TORCH_CHECK(block == static_cast<int64_t>(blocks.size()) + 1,
                "cannot read a DenseNet from the weights: dense block ", blocks.size() + 1,
                " is missing");
    blocks.push_back(count);
  }
  return blocks;
}

std::string number(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

// theta with floor(theta * in) = out for every transition (the rounding of the original and of
// architecture.cpp), preferring the shortest decimal: 108 of 216 is 0.5, not 0.50000001.
double infer_compression(const StateDict& weights, int64_t blocks) {
  std::vector<std::pair<int64_t, int64_t>> transitions;  // (in, out) channels
  for (int64_t t = 1; t < blocks; ++t) {
    const torch::Tensor& conv =
        shaped(weights, "features.transition" + std::to_string(t) + ".conv.weight", 4);
    transitions.emplace_back(conv.size(1), conv.size(0));
  }
  if (transitions.empty()) return 1.0;
  auto fits = [&transitions](double theta) {
    for (const auto& [in, out] : transitions) {
      if (static_cast<int64_t>(static_cast<double>(in) * theta) != out) return false;
    }
    return theta > 0 && theta <= 1;
  };
  const double ratio = static_cast<double>(transitions[0].second) / transitions[0].first;
  for (const double scale : {10.0, 100.0, 1000.0, 10000.0}) {
    for (const double rounded : {std::round(ratio * scale), std::ceil(ratio * scale)}) {
      if (fits(rounded / scale)) return rounded / scale;
    }
  }
  TORCH_CHECK(fits(ratio),
              "cannot read a DenseNet from the weights: no compression maps every "
              "transition's channels (the first maps ",
              transitions[0].first, " to ", transitions[0].second, ")");
  return ratio;
}

// The fields that decide the keys and shapes, as (key, value) in flag order; compression only
// with transitions.
std::vector<std::pair<std::string, std::string>> fields(const DenseNetOptions& o) {
  std::vector<std::pair<std::string, std::string>> out = {
      {"stem", stem_name(o.effective_stem())},
      {"in-channels", std::to_string(o.in_channels())},
      {"num-init-features", std::to_string(o.num_init_features())},
      {"growth-rate", std::to_string(o.effective_growth_rate())},
      {"block-config", format_int_list(o.block_config())},
      {"bn-size", std::to_string(o.bn_size())},
      {"compression", number(o.compression())},
      {"num-classes", std::to_string(o.num_classes())}};
  return out;
}

bool compare_compression(const DenseNetOptions& a, const DenseNetOptions& b) {
  return a.block_config().size() > 1 && b.block_config().size() > 1;
}

// The position of a field in flag order (fields()'s).
size_t field_rank(const std::string& key) {
  static const std::vector<std::string> order = {"stem",        "in-channels",  "num-init-features",
                                                 "growth-rate", "block-config", "bn-size",
                                                 "compression", "num-classes"};
  return static_cast<size_t>(std::find(order.begin(), order.end(), key) - order.begin());
}

}  // namespace

DenseNetOptions infer_architecture(const StateDict& weights) {
  const torch::Tensor& conv0 = shaped(weights, "features.conv0.weight", 4);
  const int64_t kernel = conv0.size(3);
  TORCH_CHECK(kernel == 3 || kernel == 7,
              "cannot read a DenseNet from the weights: the first convolution is ", kernel, "x",
              kernel, ", neither stem's (3x3 cifar, 7x7 imagenet)");
  const Stem stem = kernel == 7 ? Stem::kImageNet : Stem::kCifar;
  DenseNetOptions options;
  options.stem(stem)
      .input_size(stem == Stem::kImageNet ? 224 : DenseNetOptions::kLargestSmallStemInput)
      .in_channels(conv0.size(1))
      .num_init_features(conv0.size(0))
      .block_config(layers_per_block(weights));
  // The first layer tells the layer's kind: a bottleneck (conv1 1x1 to bn_size * k, conv2 3x3
  // to k) or plain (conv1 3x3 to k).
  const std::string layer = "features.denseblock1.denselayer1.";
  const torch::Tensor& conv1 = shaped(weights, layer + "conv1.weight", 4);
  if (const torch::Tensor* conv2 = weights.find(layer + "conv2.weight")) {
    const int64_t k = shaped(weights, layer + "conv2.weight", 4).size(0);
    TORCH_CHECK(k > 0, "cannot read a DenseNet from the weights: ", layer,
                "conv2.weight has no output channels");
    TORCH_CHECK(conv1.size(0) % k == 0,
                "cannot read a DenseNet from the weights: the bottleneck's ", conv1.size(0),
                " channels are not a multiple of the growth rate ", k, " (", layer, "conv2.weight ",
                conv2->sizes(), ")");
    options.growth_rate(k).bn_size(conv1.size(0) / k);
  } else {
    options.growth_rate(conv1.size(0)).bn_size(0);
  }
  options.compression(
      infer_compression(weights, static_cast<int64_t>(options.block_config().size())));
  options.num_classes(shaped(weights, "classifier.weight", 2).size(0));
  return options;
}

std::vector<ArchitectureDifference> architecture_differences(const DenseNetOptions& first,
                                                             const DenseNetOptions& second) {
  const auto a = fields(first), b = fields(second);
  std::vector<ArchitectureDifference> out;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].first == "compression" && !compare_compression(first, second)) continue;
    if (a[i].second != b[i].second) out.push_back({a[i].first, a[i].second, b[i].second});
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> overrides_between(const DenseNetOptions& from,
                                                                   const DenseNetOptions& to) {
  // What apply_overrides makes of the stem channels: 2k for a new growth rate of a bottleneck
  // model, unless they are given too.
  int64_t stem_channels = from.num_init_features();
  if (to.effective_growth_rate() != from.effective_growth_rate() && from.bn_size() > 0) {
    stem_channels = 2 * to.effective_growth_rate();
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const ArchitectureDifference& difference : architecture_differences(to, from)) {
    if (difference.key != "num-init-features") out.emplace_back(difference.key, difference.first);
  }
  if (stem_channels != to.num_init_features()) {
    out.emplace_back("num-init-features", std::to_string(to.num_init_features()));
    std::stable_sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
      return field_rank(x.first) < field_rank(y.first);
    });
  }
  return out;
}

std::string format_overrides(const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::string text;
  for (const auto& [key, value] : overrides) {
    text += (text.empty() ? "--" : " --") + key + " " + value;
  }
  return text;
}

PresetMatch nearest_preset(const DenseNetOptions& options, const std::string& prefer) {
  PresetMatch best;
  bool found = false;
  for (const Preset& preset : presets()) {
    auto overrides = overrides_between(preset.options, options);
    if (!found || overrides.size() < best.overrides.size() ||
        (overrides.size() == best.overrides.size() && preset.name == prefer)) {
      best = {preset.name, std::move(overrides)};
      found = true;
    }
  }
  return best;
}

std::string describe_architecture(const DenseNetOptions& options, const std::string& prefer) {
  const PresetMatch nearest = nearest_preset(options, prefer);
  if (nearest.overrides.empty()) return nearest.preset;
  if (nearest.overrides.size() <= 3) {
    return nearest.preset + " with " + format_overrides(nearest.overrides);
  }
  std::string text;
  for (const auto& [key, value] : fields(options)) {
    if (key == "compression" && options.block_config().size() < 2) continue;
    text += (text.empty() ? "" : ", ") + key + " " + value;
  }
  return "a DenseNet with " + text;
}

}  // namespace densenet

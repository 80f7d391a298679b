#include "densenet/model/overrides.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace densenet {
namespace {

using O = DenseNetOptions;

bool parse_integer(const std::string& text, int64_t& value) {
  if (text.empty() || text.find_first_of(" \t") != std::string::npos) return false;
  char* end = nullptr;
  errno = 0;
  value = std::strtoll(text.c_str(), &end, 10);
  return errno == 0 && *end == '\0';
}

bool parse_real(const std::string& text, double& value) {
  if (text.empty()) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  return *end == '\0';
}

// "expects an integer from 1 to 1048576, got 'twelve'" / "must be from 1 to 1048576, got 0".
template <int64_t kLow, int64_t kHigh>
std::string integer_from_to(const std::string& text) {
  const std::string range = std::to_string(kLow) + " to " + std::to_string(kHigh);
  int64_t value = 0;
  if (!parse_integer(text, value))
    return "expects an integer from " + range + ", got '" + text + "'";
  return value >= kLow && value <= kHigh ? "" : "must be from " + range + ", got " + text;
}

// A real number in (low, high] (kLowOpen) or [low, high) (otherwise), as the paper's theta and
// dropout rate are bounded.
template <bool kLowOpen>
std::string unit_interval(const std::string& text) {
  double value = 0;
  if (!parse_real(text, value)) return "expects a number, got '" + text + "'";
  const bool inside =
      std::isfinite(value) && (kLowOpen ? value > 0 && value <= 1 : value >= 0 && value < 1);
  return inside ? ""
                : std::string("must be in ") + (kLowOpen ? "(0, 1]" : "[0, 1)") + ", got " + text;
}

std::string block_config_check(const std::string& text) {
  std::vector<int64_t> blocks;
  try {
    blocks = parse_int_list(text);
  } catch (const c10::Error& error) {
    return error.what_without_backtrace();
  }
  if (static_cast<int64_t>(blocks.size()) > O::kMaxBlocks) {
    return "at most " + std::to_string(O::kMaxBlocks) + " dense blocks are supported, got " +
           std::to_string(blocks.size());
  }
  for (const int64_t layers : blocks) {
    if (layers < 1 || layers > O::kMaxLayersPerBlock) {
      return "each block needs 1 to " + std::to_string(O::kMaxLayersPerBlock) + " layers, got " +
             std::to_string(layers);
    }
  }
  return "";
}

std::string stem_check(const std::string& text) {
  try {
    parse_stem(text);
    return "";
  } catch (const c10::Error& error) {
    return error.what_without_backtrace();
  }
}

int64_t integer(const std::string& text) {
  return std::stoll(text);
}

std::vector<OverrideField> make_fields() {
  constexpr int64_t kChannels = O::kMaxChannels;
  return {
      {"growth-rate", "growth_rate", "K",
       "k: channels each dense layer adds (a BC preset's stem follows as 2k)",
       integer_from_to<1, kChannels>,
       [](ModelOverrides& o, const std::string& t) { o.growth_rate = integer(t); }},
      {"block-config", "block_config", "LIST", "layers per dense block, e.g. 6,12,24,16",
       block_config_check,
       [](ModelOverrides& o, const std::string& t) { o.block_config = parse_int_list(t); }},
      {"num-init-features", "num_init_features", "C", "output channels of the stem convolution",
       integer_from_to<1, kChannels>,
       [](ModelOverrides& o, const std::string& t) { o.num_init_features = integer(t); }},
      {"bn-size", "bn_size", "N",
       "bottleneck width factor (0 = plain DenseNet layer, no bottleneck)",
       integer_from_to<0, O::kMaxBnSize>,
       [](ModelOverrides& o, const std::string& t) { o.bn_size = integer(t); }},
      {"compression", "", "THETA", "transition compression theta", unit_interval<true>,
       [](ModelOverrides& o, const std::string& t) { o.compression = std::stod(t); }},
      {"drop-rate", "drop_rate", "P", "dropout after each dense layer", unit_interval<false>,
       [](ModelOverrides& o, const std::string& t) { o.drop_rate = std::stod(t); }},
      {"num-classes", "num_classes", "N", "classifier outputs", integer_from_to<1, O::kMaxClasses>,
       [](ModelOverrides& o, const std::string& t) { o.num_classes = integer(t); }},
      {"in-channels", "", "C", "input image channels", integer_from_to<1, kChannels>,
       [](ModelOverrides& o, const std::string& t) { o.in_channels = integer(t); }},
      {"input-size", "", "S",
       "input height/width in pixels (chooses the stem unless --stem is given)",
       integer_from_to<1, O::kMaxInputSize>,
       [](ModelOverrides& o, const std::string& t) { o.input_size = integer(t); }},
      {"stem", "", "STEM",
       "cifar (one 3x3 conv) or imagenet (7x7/2 conv, BN, ReLU, 3x3/2 max-pool); default: cifar "
       "for --input-size up to 32, imagenet above",
       stem_check, [](ModelOverrides& o, const std::string& t) { o.stem = parse_stem(t); }},
  };
}

}  // namespace

const std::vector<OverrideField>& override_fields() {
  static const std::vector<OverrideField> fields = make_fields();
  return fields;
}

const OverrideField* find_override_field(const std::string& name) {
  for (const OverrideField& field : override_fields()) {
    if (field.name == name) return &field;
  }
  return nullptr;
}

}  // namespace densenet

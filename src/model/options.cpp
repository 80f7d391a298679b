#include "densenet/model/options.h"

#include "densenet/model/architecture.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace densenet {

std::string memory_mode_name(MemoryMode mode) {
  switch (mode) {
    case MemoryMode::kNaive:
      return "naive";
    case MemoryMode::kEfficient:
      return "efficient";
    case MemoryMode::kMinimal:
      return "minimal";
  }
  TORCH_INTERNAL_ASSERT(false, "unknown MemoryMode ", static_cast<int>(mode));
}

MemoryMode parse_memory_mode(const std::string& name) {
  if (name == "naive") return MemoryMode::kNaive;
  if (name == "efficient") return MemoryMode::kEfficient;
  if (name == "minimal") return MemoryMode::kMinimal;
  TORCH_CHECK(false, "unknown memory mode '", name, "': use naive, efficient or minimal");
}

std::string stem_name(Stem stem) {
  switch (stem) {
    case Stem::kCifar:
      return "cifar";
    case Stem::kImageNet:
      return "imagenet";
  }
  TORCH_INTERNAL_ASSERT(false, "unknown Stem ", static_cast<int>(stem));
}

Stem parse_stem(const std::string& name) {
  if (name == "cifar") return Stem::kCifar;
  if (name == "imagenet") return Stem::kImageNet;
  TORCH_CHECK(false, "unknown stem '", name, "': use cifar or imagenet");
}

int64_t DenseNetOptions::effective_growth_rate() const {
  return growth_rate_.has_value() ? *growth_rate_ : num_init_features_ / 2;
}

void validate(const DenseNetOptions& o) {
  using O = DenseNetOptions;
  TORCH_CHECK(o.in_channels() >= 1, "in_channels must be >= 1, got ", o.in_channels());
  TORCH_CHECK(o.in_channels() <= O::kMaxChannels, "in_channels must be <= ", O::kMaxChannels,
              ", got ", o.in_channels());
  TORCH_CHECK(o.num_init_features() >= 1, "num_init_features must be >= 1, got ",
              o.num_init_features());
  TORCH_CHECK(o.num_init_features() <= O::kMaxChannels,
              "num_init_features must be <= ", O::kMaxChannels, ", got ", o.num_init_features());
  TORCH_CHECK(!o.growth_rate().has_value() || *o.growth_rate() >= 1,
              "growth_rate must be >= 1, got ", o.growth_rate().value_or(0));
  TORCH_CHECK(o.effective_growth_rate() <= O::kMaxChannels,
              "growth_rate must be <= ", O::kMaxChannels, ", got ", o.effective_growth_rate());
  TORCH_CHECK(o.effective_growth_rate() >= 1,
              "growth_rate defaults to num_init_features / 2 = ", o.effective_growth_rate(),
              " for num_init_features ", o.num_init_features(), "; set growth_rate explicitly");
  TORCH_CHECK(!o.block_config().empty(),
              "block_config is empty: give the number of layers of each dense block, e.g. "
              "6,12,24,16");
  TORCH_CHECK(static_cast<int64_t>(o.block_config().size()) <= O::kMaxBlocks, "block_config has ",
              o.block_config().size(), " dense blocks; at most ", O::kMaxBlocks, " are supported");
  for (size_t i = 0; i < o.block_config().size(); ++i) {
    TORCH_CHECK(o.block_config()[i] >= 1, "block_config[", i, "] must be >= 1 layer, got ",
                o.block_config()[i], " (block_config ", format_int_list(o.block_config()), ")");
    TORCH_CHECK(o.block_config()[i] <= O::kMaxLayersPerBlock, "block_config[", i,
                "] must be <= ", O::kMaxLayersPerBlock, " layers, got ", o.block_config()[i]);
  }
  TORCH_CHECK(o.bn_size() >= 0, "bn_size must be >= 0 (0 = plain DenseNet layer), got ",
              o.bn_size());
  TORCH_CHECK(o.bn_size() <= O::kMaxBnSize, "bn_size must be <= ", O::kMaxBnSize, ", got ",
              o.bn_size());
  TORCH_CHECK(std::isfinite(o.compression()) && o.compression() > 0.0 && o.compression() <= 1.0,
              "compression must be in (0, 1], got ", o.compression());
  TORCH_CHECK(std::isfinite(o.drop_rate()) && o.drop_rate() >= 0.0 && o.drop_rate() < 1.0,
              "drop_rate must be in [0, 1), got ", o.drop_rate());
  TORCH_CHECK(o.num_classes() >= 1, "num_classes must be >= 1, got ", o.num_classes());
  TORCH_CHECK(o.num_classes() <= O::kMaxClasses, "num_classes must be <= ", O::kMaxClasses,
              ", got ", o.num_classes());
  TORCH_CHECK(o.input_size() >= 1, "input_size must be >= 1, got ", o.input_size());
  TORCH_CHECK(o.input_size() <= O::kMaxInputSize, "input_size must be <= ", O::kMaxInputSize,
              ", got ", o.input_size());
}

std::vector<int64_t> parse_int_list(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    const char* begin = item.c_str();
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(begin, &end, 10);
    TORCH_CHECK(!item.empty() && end != begin && *end == '\0' && errno == 0,
                "expected a comma-separated list of integers such as 6,12,24,16, got '", text, "'");
    values.push_back(value);
  }
  TORCH_CHECK(!text.empty() && text.back() != ',',
              "expected a comma-separated list of integers such as 6,12,24,16, got '", text, "'");
  return values;
}

std::string format_int_list(const std::vector<int64_t>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(values[i]);
  }
  return out;
}

}  // namespace densenet

#include "model_arguments.h"

#include "usage_error.h"

#include <torch/cuda.h>

#include "densenet/model/architecture.h"
#include "densenet/model/presets.h"

#include <cmath>

#include <c10/util/Exception.h>

#include <sstream>

namespace densenet::cli {

namespace {

std::string preset_names() {
  std::string names;
  for (const auto& preset : presets()) names += (names.empty() ? "" : ", ") + preset.name;
  return names;
}

// A CLI11 check that runs one of the library's parsers and reports its message.
template <typename Parse>
CLI::Validator library_check(Parse parse) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        try {
          parse(text);
          return "";
        } catch (const c10::Error& error) {
          return error.what_without_backtrace();
        }
      },
      "");
}

}  // namespace

CLI::Validator integer_in(int64_t low, int64_t high) {
  const std::string range = std::to_string(low) + " to " + std::to_string(high);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        int64_t value = 0;
        if (!CLI::detail::lexical_cast(text, value)) {
          return "expects an integer from " + range + ", got '" + text + "'";
        }
        return value >= low && value <= high ? "" : "must be from " + range + ", got " + text;
      },
      "");
}

namespace {

CLI::Validator real_range(double low, bool low_open, double high, bool high_open) {
  const std::string range = std::string(low_open ? "(" : "[") + CLI::detail::to_string(low) + ", " +
                            CLI::detail::to_string(high) + (high_open ? ")" : "]");
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return "expects a number, got '" + text + "'";
        const bool inside = (low_open ? value > low : value >= low) &&
                            (high_open ? value < high : value <= high) && std::isfinite(value);
        return inside ? "" : "must be in " + range + ", got " + text;
      },
      "");
}

void check_block_config(const std::string& text) {
  const std::vector<int64_t> blocks = parse_int_list(text);
  TORCH_CHECK(static_cast<int64_t>(blocks.size()) <= DenseNetOptions::kMaxBlocks, "at most ",
              DenseNetOptions::kMaxBlocks, " dense blocks are supported, got ", blocks.size());
  for (const int64_t layers : blocks) {
    TORCH_CHECK(layers >= 1 && layers <= DenseNetOptions::kMaxLayersPerBlock,
                "each block needs 1 to ", DenseNetOptions::kMaxLayersPerBlock, " layers, got ",
                layers);
  }
}

template <typename T>
void add_override(CLI::App& command, const std::string& names, std::optional<T>& target,
                  const std::string& value_name, const std::string& help,
                  const CLI::Validator& check, const std::string& alias = "") {
  // The original project's spelling (efficient-densenet-pytorch's constructor argument) is a
  // second name of the same option.
  command.add_option(alias.empty() ? names : names + "," + alias, target, help)
      ->type_name(value_name)
      ->check(check);
}

}  // namespace

bool ModelArguments::overrides_architecture() const {
  return !overrides_text().empty();
}

std::string ModelArguments::overrides_text() const {
  std::ostringstream text;
  auto add = [&text](const char* flag, const auto& value) {
    if (value) text << (text.tellp() > 0 ? " " : "") << flag << " " << *value;
  };
  add("--growth-rate", growth_rate);
  add("--block-config", block_config);
  add("--num-init-features", num_init_features);
  add("--bn-size", bn_size);
  add("--compression", compression);
  add("--drop-rate", drop_rate);
  add("--num-classes", num_classes);
  add("--in-channels", in_channels);
  add("--input-size", input_size);
  add("--stem", stem);
  return text.str();
}

std::string ModelArguments::label() const {
  const std::string overrides = overrides_text();
  return overrides.empty() ? arch : arch + " (overridden: " + overrides + ")";
}

void add_model_options(CLI::App& command, ModelArguments& args,
                       const ModelOptionSettings& settings) {
  using O = DenseNetOptions;
  args.arch = settings.default_arch;
  CLI::Option* arch = command.add_option(
      "--arch", args.arch,
      "preset: " + preset_names() +
          (settings.require_arch           ? " (required: no default)"
           : settings.default_arch.empty() ? " (none by default)"
                                           : " (default " + settings.default_arch + ")"));
  arch->type_name("NAME");
  if (settings.require_arch) arch->required();
  args.arch_option = arch;
  const CLI::Validator channels = integer_in(int64_t{1}, O::kMaxChannels);
  add_override(command, "--growth-rate", args.growth_rate, "K",
               "k: channels each dense layer adds (a BC preset's stem follows as 2k)", channels,
               "--growth_rate");
  add_override(command, "--block-config", args.block_config, "LIST",
               "layers per dense block, e.g. 6,12,24,16", library_check(check_block_config),
               "--block_config");
  add_override(command, "--num-init-features", args.num_init_features, "C",
               "output channels of the stem convolution", channels, "--num_init_features");
  add_override(command, "--bn-size", args.bn_size, "N",
               "bottleneck width factor (0 = plain DenseNet layer, no bottleneck)",
               integer_in(0, O::kMaxBnSize), "--bn_size");
  add_override(command, "--compression", args.compression, "THETA", "transition compression theta",
               real_range(0, true, 1, false));
  add_override(command, "--drop-rate", args.drop_rate, "P", "dropout after each dense layer",
               real_range(0, false, 1, true), "--drop_rate");
  add_override(command, "--num-classes", args.num_classes, "N", "classifier outputs",
               integer_in(1, O::kMaxClasses), "--num_classes");
  add_override(command, "--in-channels", args.in_channels, "C", "input image channels", channels);
  add_override(command, "--input-size", args.input_size, "S",
               "input height/width in pixels (chooses the stem unless --stem is given)",
               integer_in(1, O::kMaxInputSize));
  add_override(command, "--stem", args.stem, "STEM",
               "cifar (one 3x3 conv) or imagenet (7x7/2 conv, BN, ReLU, 3x3/2 max-pool); "
               "default: cifar for --input-size up to 32, imagenet above",
               library_check([](const std::string& text) { parse_stem(text); }));
  if (settings.memory_list_help.empty()) {
    add_override(command, "--memory", args.memory, "MODE", "naive | efficient | minimal",
                 library_check([](const std::string& text) { parse_memory_mode(text); }));
  } else {
    add_override(command, "--memory", args.memory, "LIST", settings.memory_list_help,
                 library_check([](const std::string& text) { parse_memory_modes(text); }));
  }
  add_refused_spellings(command, args);
}

void add_refused_spellings(CLI::App& command, ModelArguments& args) {
  // The original project's options without an equivalent here: rejected with the right one.
  command.add_option("--depth", args.depth)->group("");
  command.add_option("--efficient", args.efficient)->group("")->expected(0, 1);
  command.add_option("--small-inputs,--small_inputs", args.small_inputs)->group("")->expected(0, 1);
}

void refuse_original_spellings(const ModelArguments& args) {
  if (args.depth) {
    throw UsageError(
        "--depth is not an option here: choose a preset with --arch (e.g. densenet-bc-100 is "
        "depth 100) or give --block-config N,N,N (depth = 3N+4, or 6N+4 with bottlenecks)");
  }
  if (args.efficient) throw UsageError("--efficient is spelled --memory efficient here");
  if (args.small_inputs) throw UsageError("--small-inputs is spelled --stem cifar here");
}

DenseNetOptions model_options_from(const ModelArguments& args, bool read_memory) {
  refuse_original_spellings(args);
  DenseNetOptions options;
  try {
    options = preset_options(args.arch);
  } catch (const c10::Error& error) {
    throw UsageError(std::string("--arch: ") + error.what_without_backtrace());
  }
  try {
    ModelOverrides overrides;
    overrides.growth_rate = args.growth_rate;
    overrides.num_init_features = args.num_init_features;
    if (args.block_config) overrides.block_config = parse_int_list(*args.block_config);
    overrides.bn_size = args.bn_size;
    overrides.compression = args.compression;
    overrides.drop_rate = args.drop_rate;
    overrides.num_classes = args.num_classes;
    overrides.in_channels = args.in_channels;
    overrides.input_size = args.input_size;
    if (args.stem) overrides.stem = parse_stem(*args.stem);
    options = apply_overrides(options, overrides);
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  if (read_memory && args.memory) options.memory(parse_memory_mode(*args.memory));
  try {
    validate(options);
    plan_architecture(options);  // throws when a count overflows
  } catch (const c10::Error& error) {
    throw UsageError(error.what_without_backtrace());
  }
  return options;
}

std::vector<MemoryMode> memory_modes_from(const std::string& text) {
  try {
    return parse_memory_modes(text);
  } catch (const c10::Error& error) {
    throw UsageError(std::string("--memory: ") + error.what_without_backtrace());
  }
}

torch::Device device_from(const std::string& name) {
  if (name != "cpu" && name != "cuda") {
    throw UsageError("--device: unknown device '" + name + "': use cpu or cuda");
  }
  if (name == "cuda" && !torch::cuda::is_available()) {
    throw UsageError(
        "--device cuda: no CUDA device is available (or LibTorch was built without CUDA)");
  }
  return name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

std::vector<MemoryMode> parse_memory_modes(const std::string& text) {
  std::vector<MemoryMode> modes;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) modes.push_back(parse_memory_mode(item));
  TORCH_CHECK(!modes.empty(), "no memory mode given: use e.g. naive,efficient,minimal");
  return modes;
}

}  // namespace densenet::cli

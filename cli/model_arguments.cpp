#include "model_arguments.h"

#include <torch/cuda.h>

#include "densenet/model/presets.h"

#include <c10/util/Exception.h>

#include <sstream>

namespace densenet::cli {

std::vector<OptionSpec> model_option_specs(const std::string& memory_list_help) {
  std::vector<OptionSpec> specs = {
      {"arch", "NAME",
       "preset: densenet121|161|169|201|264, densenet-bc-100|190|250, densenet-40 (default)"},
      {"growth-rate", "K", "channels added per dense layer (k)"},
      {"block-config", "LIST", "layers per dense block, e.g. 6,12,24,16"},
      {"num-init-features", "C", "output channels of the stem convolution"},
      {"bn-size", "N", "bottleneck width factor (0 = plain DenseNet layer, no bottleneck)"},
      {"compression", "THETA", "transition compression in (0, 1]"},
      {"drop-rate", "P", "dropout after each dense layer, in [0, 1)"},
      {"num-classes", "N", "classifier outputs"},
      {"in-channels", "C", "input image channels"},
      {"input-size", "S", "input height/width; <= 32 selects the small (CIFAR) stem"},
      {"memory", "MODE", "naive | efficient | minimal"},
  };
  if (!memory_list_help.empty()) specs.back() = {"memory", "LIST", memory_list_help};
  return specs;
}

std::vector<MemoryMode> parse_memory_modes(const std::string& text) {
  std::vector<MemoryMode> modes;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) modes.push_back(parse_memory_mode(item));
  TORCH_CHECK(!modes.empty(), "no memory mode given: use e.g. naive,efficient,minimal");
  return modes;
}

DenseNetOptions model_options_from(const Arguments& args, bool read_memory) {
  DenseNetOptions options = preset_options(args.value("arch").value_or("densenet-40"));
  if (auto v = args.integer("growth-rate")) options.growth_rate(*v);
  if (auto v = args.value("block-config")) options.block_config(parse_int_list(*v));
  if (auto v = args.integer("num-init-features")) options.num_init_features(*v);
  if (auto v = args.integer("bn-size")) options.bn_size(*v);
  if (auto v = args.real("compression")) options.compression(*v);
  if (auto v = args.real("drop-rate")) options.drop_rate(*v);
  if (auto v = args.integer("num-classes")) options.num_classes(*v);
  if (auto v = args.integer("in-channels")) options.in_channels(*v);
  if (auto v = args.integer("input-size")) options.input_size(*v);
  if (read_memory) {
    if (auto v = args.value("memory")) options.memory(parse_memory_mode(*v));
  }
  validate(options);
  return options;
}

torch::Device device_from(const Arguments& args) {
  const std::string name = args.value("device").value_or("cpu");
  TORCH_CHECK(name == "cpu" || name == "cuda", "unknown device '", name, "': use cpu or cuda");
  TORCH_CHECK(name == "cpu" || torch::cuda::is_available(),
              "--device cuda: no CUDA device is available (or LibTorch was built without CUDA)");
  return name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

}  // namespace densenet::cli

#include "densenet/model/presets.h"

#include <c10/util/Exception.h>

namespace densenet {

namespace {

// ImageNet models: DenseNet-BC with bottleneck 4k, compression 0.5, 224x224 RGB, 1000 classes.
DenseNetOptions imagenet(int64_t growth_rate, std::vector<int64_t> blocks, int64_t init) {
  return DenseNetOptions()
      .in_channels(3)
      .num_init_features(init)
      .growth_rate(growth_rate)
      .block_config(std::move(blocks))
      .bn_size(4)
      .compression(0.5)
      .num_classes(1000)
      .input_size(224);
}

// CIFAR models: three blocks of equal depth on 32x32 RGB, 10 classes (CIFAR-10).
DenseNetOptions cifar(int64_t growth_rate, int64_t layers_per_block, int64_t init, int64_t bn_size,
                      double compression) {
  return DenseNetOptions()
      .in_channels(3)
      .num_init_features(init)
      .growth_rate(growth_rate)
      .block_config({layers_per_block, layers_per_block, layers_per_block})
      .bn_size(bn_size)
      .compression(compression)
      .num_classes(10)
      .input_size(32);
}

std::vector<Preset> make_presets() {
  // DenseNet-BC depth L = 6 * layers_per_block + 4 on CIFAR (two convolutions per layer).
  return {
      {"densenet121", "torchvision densenet121: k=32, blocks 6,12,24,16",
       imagenet(32, {6, 12, 24, 16}, 64)},
      {"densenet161", "torchvision densenet161: k=48, blocks 6,12,36,24",
       imagenet(48, {6, 12, 36, 24}, 96)},
      {"densenet169", "torchvision densenet169: k=32, blocks 6,12,32,32",
       imagenet(32, {6, 12, 32, 32}, 64)},
      {"densenet201", "torchvision densenet201: k=32, blocks 6,12,48,32",
       imagenet(32, {6, 12, 48, 32}, 64)},
      {"densenet264", "DenseNet-264 of the paper: k=32, blocks 6,12,64,48",
       imagenet(32, {6, 12, 64, 48}, 64)},
      {"densenet-bc-100", "DenseNet-BC (L=100, k=12) for 32x32 inputs", cifar(12, 16, 24, 4, 0.5)},
      // DenseNet-BC-100's layers with 6 per block instead of 16: a model a laptop CPU trains in
      // minutes (densenet train's default for Fashion-MNIST).
      {"densenet-bc-40", "DenseNet-BC (L=40, k=12) for 28x28/32x32 inputs",
       cifar(12, 6, 24, 4, 0.5)},
      {"densenet-bc-190", "DenseNet-BC (L=190, k=40) for 32x32 inputs", cifar(40, 31, 80, 4, 0.5)},
      {"densenet-bc-250", "DenseNet-BC (L=250, k=24) for 32x32 inputs", cifar(24, 41, 48, 4, 0.5)},
      {"densenet-40",
       "DenseNet (L=40, k=12), no bottleneck or compression: the original's benchmark",
       cifar(12, 12, 24, 0, 1.0)},
  };
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> table = make_presets();
  return table;
}

DenseNetOptions preset_options(const std::string& name) {
  std::string known;
  for (const auto& preset : presets()) {
    if (preset.name == name) return preset.options;
    known += (known.empty() ? "" : ", ") + preset.name;
  }
  TORCH_CHECK(false, "unknown architecture '", name, "': choose one of ", known);
}

DenseNetOptions apply_overrides(DenseNetOptions options, const ModelOverrides& overrides) {
  if (overrides.growth_rate) {
    // Checked here so that the error names the growth rate, not the stem it moves. The limit is
    // validate()'s on every channel count; a BC stem of 2k channels must be within it too.
    constexpr int64_t kMax = DenseNetOptions::kMaxChannels;
    const int64_t k = *overrides.growth_rate;
    TORCH_CHECK(k >= 1 && k <= kMax, "growth rate must be from 1 to ", kMax, ", got ", k);
    options.growth_rate(k);
    if (options.bn_size() > 0 && !overrides.num_init_features) {
      TORCH_CHECK(2 * k <= kMax, "growth rate ", k, " gives a BC stem of 2k = ", 2 * k,
                  " channels, over the limit of ", kMax,
                  ": give num-init-features too, or a growth rate of at most ", kMax / 2);
      options.num_init_features(2 * k);
    }
  }
  if (overrides.num_init_features) options.num_init_features(*overrides.num_init_features);
  if (overrides.block_config) options.block_config(*overrides.block_config);
  if (overrides.bn_size) options.bn_size(*overrides.bn_size);
  if (overrides.compression) options.compression(*overrides.compression);
  if (overrides.drop_rate) options.drop_rate(*overrides.drop_rate);
  if (overrides.num_classes) options.num_classes(*overrides.num_classes);
  if (overrides.in_channels) options.in_channels(*overrides.in_channels);
  if (overrides.input_size) options.input_size(*overrides.input_size);
  if (overrides.stem) options.stem(*overrides.stem);
  validate(options);
  return options;
}

}  // namespace densenet

#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace densenet {

/// How a dense block trades memory for compute. Every mode has the same parameters, buffers
/// and state-dict keys, so a checkpoint written in one mode loads into any other.
enum class MemoryMode {
  /// Plain autograd: each layer concatenates its inputs and keeps every intermediate.
  kNaive,
  /// Shared per-block feature buffer, BN-ReLU recomputed in backward.
  kEfficient,
  /// `kEfficient`, and the bottleneck (1x1 conv, BN, ReLU) is recomputed too.
  kMinimal,
};

/// "naive" | "efficient" | "minimal".
std::string memory_mode_name(MemoryMode mode);
/// Inverse of `memory_mode_name`; throws c10::Error naming the accepted values.
MemoryMode parse_memory_mode(const std::string& name);

/// The stem in front of the first dense block.
enum class Stem {
  /// One 3x3 convolution, stride 1 (the paper's CIFAR/SVHN networks).
  kCifar,
  /// 7x7/2 convolution, BN, ReLU, 3x3/2 max-pool (the paper's ImageNet networks, torchvision).
  kImageNet,
};

/// "cifar" | "imagenet".
std::string stem_name(Stem stem);
/// Inverse of `stem_name`; throws c10::Error naming the accepted values.
Stem parse_stem(const std::string& name);

/// Every option of the original DenseNet / DenseNet-BC constructor (Huang et al. 2017, as in
/// efficient-densenet-pytorch), with its defaults. The defaults describe the original's default
/// network: DenseNet (L=40, k=12) on 32x32 inputs, 100 classes.
struct DenseNetOptions {
  /// Channels of the input image (3 for RGB, 1 for MNIST-like data).
  TORCH_ARG(int64_t, in_channels) = 3;
  /// Output channels of the stem convolution (2k in the paper for DenseNet-BC).
  TORCH_ARG(int64_t, num_init_features) = 24;
  /// k in the paper: channels each dense layer adds. Unset means num_init_features / 2, as in
  /// the original project.
  TORCH_ARG(std::optional<int64_t>, growth_rate) = std::nullopt;
  /// Number of dense layers in each dense block; one transition sits between two blocks.
  TORCH_ARG(std::vector<int64_t>, block_config) = std::vector<int64_t>{12, 12, 12};
  /// 0: plain DenseNet layer BN-ReLU-3x3 conv(k). > 0: DenseNet-BC bottleneck layer
  /// BN-ReLU-1x1 conv(bn_size*k)-BN-ReLU-3x3 conv(k).
  TORCH_ARG(int64_t, bn_size) = 0;
  /// theta in the paper, 0 < theta <= 1: a transition maps C channels to floor(theta*C).
  TORCH_ARG(double, compression) = 1.0;
  /// Dropout probability after each dense layer's last convolution (training only).
  TORCH_ARG(double, drop_rate) = 0.0;
  /// Outputs of the final linear classifier.
  TORCH_ARG(int64_t, num_classes) = 100;
  /// Nominal input height/width. Unless `stem` is set it chooses the stem: <= 32 gives the
  /// CIFAR stem, > 32 the ImageNet stem. Inputs of other sizes are accepted as long as the
  /// feature maps do not shrink to nothing.
  TORCH_ARG(int64_t, input_size) = 32;
  /// The stem; unset means chosen from `input_size` (the original's `small_inputs`).
  TORCH_ARG(std::optional<Stem>, stem) = std::nullopt;
  /// Memory/compute trade of the dense blocks; results are the same in every mode.
  TORCH_ARG(MemoryMode, memory) = MemoryMode::kNaive;

 public:  // TORCH_ARG leaves the section private
  /// k actually used: `growth_rate` if set, else num_init_features / 2.
  int64_t effective_growth_rate() const;
  /// The stem used: `stem` if set, else CIFAR for inputs up to 32 pixels, ImageNet above.
  Stem effective_stem() const {
    if (stem_.has_value()) return *stem_;
    return input_size_ <= kLargestSmallStemInput ? Stem::kCifar : Stem::kImageNet;
  }
  /// True when the CIFAR-style single 3x3 convolution stem is used.
  bool uses_small_stem() const { return effective_stem() == Stem::kCifar; }

  static constexpr int64_t kLargestSmallStemInput = 32;

  /// The largest values `validate` accepts. Far beyond any published DenseNet (k <= 48,
  /// 264 layers, 4 blocks, 320-pixel inputs), they keep a configuration buildable in
  /// principle; the architecture plan still checks its counts (parameters, MACs, bytes)
  /// for int64 overflow, since products of these limits can exceed it.
  static constexpr int64_t kMaxChannels = int64_t{1} << 20;   // in_channels, k, stem, bn
  static constexpr int64_t kMaxBnSize = 64;                   // bn_size (torchvision: 4)
  static constexpr int64_t kMaxBlocks = 64;                   // entries of block_config
  static constexpr int64_t kMaxLayersPerBlock = 100000;       // each block_config entry
  static constexpr int64_t kMaxClasses = int64_t{1} << 24;    // num_classes
  static constexpr int64_t kMaxInputSize = int64_t{1} << 16;  // input_size, pixels
};

/// Throws c10::Error with an actionable message on the first invalid option (out of the
/// bounds above, or nonsensical), including
/// configurations whose feature maps would shrink below 1x1 at the nominal input size.
void validate(const DenseNetOptions& options);

/// "6,12,24,16" -> {6, 12, 24, 16}; throws on anything that is not a list of integers.
std::vector<int64_t> parse_int_list(const std::string& text);
/// {6, 12, 24, 16} -> "6,12,24,16".
std::string format_int_list(const std::vector<int64_t>& values);

}  // namespace densenet

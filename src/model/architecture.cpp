#include "densenet/model/architecture.h"

#include <c10/util/Exception.h>

namespace densenet {

namespace {

constexpr int64_t kSmallStemKernel = 3;
constexpr int64_t kLargeStemKernel = 7;
constexpr int64_t kDenseConvKernelArea = 3 * 3;

}  // namespace

int64_t stem_output_size(const DenseNetOptions& options, int64_t size) {
  if (options.uses_small_stem()) return size;                            // 3x3, stride 1, padding 1
  const int64_t after_conv = (size + 2 * 3 - kLargeStemKernel) / 2 + 1;  // 7x7, stride 2, pad 3
  if (after_conv < 1) return 0;
  return (after_conv + 2 * 1 - 3) / 2 + 1;  // max-pool 3x3, stride 2, pad 1
}

ArchitecturePlan plan_architecture(const DenseNetOptions& options, int64_t input_size) {
  validate(options);
  ArchitecturePlan plan;
  plan.options = options;
  plan.input_size = input_size > 0 ? input_size : options.input_size();
  plan.stem_out_spatial = stem_output_size(options, plan.input_size);

  const int64_t k = options.effective_growth_rate();
  int64_t channels = options.num_init_features();
  int64_t spatial = plan.stem_out_spatial;
  const auto& config = options.block_config();
  for (size_t b = 0; b < config.size(); ++b) {
    TORCH_CHECK(spatial >= 1, "input size ", plan.input_size, " is too small for ", config.size(),
                " dense blocks", options.uses_small_stem() ? "" : " after the ImageNet stem",
                ": the feature maps vanish before dense block ", b + 1,
                " (each transition halves them); use a larger input or fewer blocks");
    BlockPlan block;
    block.num_layers = config[b];
    block.in_channels = channels;
    block.growth_rate = k;
    block.bottleneck_width = options.bn_size() * k;
    block.out_channels = channels + config[b] * k;
    block.spatial = spatial;
    channels = block.out_channels;
    if (b + 1 < config.size()) {
      // The original rounds down: int(num_features * compression).
      block.transition_out_channels =
          static_cast<int64_t>(static_cast<double>(channels) * options.compression());
      TORCH_CHECK(block.transition_out_channels >= 1, "compression ", options.compression(),
                  " leaves transition ", b + 1, " with 0 of its ", channels,
                  " channels; use a larger compression");
      channels = block.transition_out_channels;
      spatial /= 2;  // 2x2 average pool, stride 2
    }
    plan.blocks.push_back(block);
  }
  plan.final_channels = channels;
  return plan;
}

int64_t ArchitecturePlan::num_dense_layers() const {
  int64_t layers = 0;
  for (const auto& block : blocks) layers += block.num_layers;
  return layers;
}

int64_t ArchitecturePlan::depth() const {
  const int64_t convs_per_layer = options.bn_size() > 0 ? 2 : 1;
  const int64_t transitions = static_cast<int64_t>(blocks.size()) - 1;
  return 1 + convs_per_layer * num_dense_layers() + transitions + 1;
}

int64_t ArchitecturePlan::num_parameters() const {
  const int64_t stem_kernel = options.uses_small_stem() ? kSmallStemKernel : kLargeStemKernel;
  const int64_t c0 = options.num_init_features();
  int64_t count = options.in_channels() * c0 * stem_kernel * stem_kernel;
  if (!options.uses_small_stem()) count += 2 * c0;  // norm0
  for (const auto& block : blocks) {
    for (int64_t l = 0; l < block.num_layers; ++l) {
      const int64_t c = block.layer_in_channels(l);
      const int64_t b = block.bottleneck_width;
      count += 2 * c;  // norm1
      if (b > 0) {
        count += c * b + 2 * b + b * block.growth_rate * kDenseConvKernelArea;
      } else {
        count += c * block.growth_rate * kDenseConvKernelArea;
      }
    }
    if (block.transition_out_channels > 0) {
      count += 2 * block.out_channels + block.out_channels * block.transition_out_channels;
    }
  }
  count += 2 * final_channels;                                              // final norm
  count += final_channels * options.num_classes() + options.num_classes();  // classifier
  return count;
}

int64_t ArchitecturePlan::forward_macs() const {
  const int64_t stem_kernel = options.uses_small_stem() ? kSmallStemKernel : kLargeStemKernel;
  const int64_t stem_conv_spatial =
      options.uses_small_stem() ? input_size : (input_size + 2 * 3 - kLargeStemKernel) / 2 + 1;
  int64_t macs = options.in_channels() * options.num_init_features() * stem_kernel * stem_kernel *
                 stem_conv_spatial * stem_conv_spatial;
  for (const auto& block : blocks) {
    const int64_t area = block.spatial * block.spatial;
    for (int64_t l = 0; l < block.num_layers; ++l) {
      const int64_t c = block.layer_in_channels(l);
      const int64_t b = block.bottleneck_width;
      if (b > 0) {
        macs += (c * b + b * block.growth_rate * kDenseConvKernelArea) * area;
      } else {
        macs += c * block.growth_rate * kDenseConvKernelArea * area;
      }
    }
    if (block.transition_out_channels > 0) {
      macs += block.out_channels * block.transition_out_channels * area;
    }
  }
  macs += final_channels * options.num_classes();
  return macs;
}

}  // namespace densenet

#include "densenet/model/architecture.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace densenet {

namespace {

constexpr int64_t kSmallStemKernel = 3;
constexpr int64_t kLargeStemKernel = 7;
constexpr int64_t kDenseConvKernelArea = 3 * 3;
// plan_memory multiplies activation element counts by small constants (< 16) and an element
// size (<= 8); plans whose activation count times this would overflow int64 are refused.
constexpr int64_t kMemoryPlanHeadroom = 1024;

// int64 arithmetic that throws instead of wrapping (a wrapped count printed as a negative
// parameter count). `what` names the count in the error.
int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t result = 0;
  TORCH_CHECK(!__builtin_mul_overflow(a, b, &result), "this architecture is too large: its ", what,
              " overflows a 64-bit integer; use fewer layers, channels or a smaller input");
  return result;
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t result = 0;
  TORCH_CHECK(!__builtin_add_overflow(a, b, &result), "this architecture is too large: its ", what,
              " overflows a 64-bit integer; use fewer layers, channels or a smaller input");
  return result;
}

// Sum of products, checked: a*b + c*d + ...
template <typename... Factors>
int64_t product(const char* what, int64_t first, Factors... rest) {
  int64_t result = first;
  for (const int64_t factor : {rest...}) result = checked_mul(result, factor, what);
  return result;
}

// H = W of the last dense block for an input of `size`, 0 if the maps vanish before it.
int64_t last_block_spatial(const DenseNetOptions& options, int64_t size) {
  int64_t spatial = stem_output_size(options, size);
  for (size_t b = 1; b < options.block_config().size(); ++b) spatial /= 2;
  return spatial;
}

}  // namespace

int64_t stem_output_size(const DenseNetOptions& options, int64_t size) {
  if (options.uses_small_stem()) return size;                            // 3x3, stride 1, padding 1
  const int64_t after_conv = (size + 2 * 3 - kLargeStemKernel) / 2 + 1;  // 7x7, stride 2, pad 3
  if (after_conv < 1) return 0;
  return (after_conv + 2 * 1 - 3) / 2 + 1;  // max-pool 3x3, stride 2, pad 1
}

int64_t smallest_training_batch(const ArchitecturePlan& plan) {
  TORCH_INTERNAL_ASSERT(!plan.blocks.empty());
  return plan.blocks.back().spatial >= 2 ? 1 : 2;
}

void check_batch_norm_values(const ArchitecturePlan& plan, int64_t batch) {
  TORCH_CHECK_VALUE(batch >= 1, "batch must be >= 1, got ", batch);
  if (batch >= smallest_training_batch(plan)) return;
  // The smallest input whose last block has 2x2 maps: the size is monotone in the input, so
  // double past it, then bisect (a deep plan may need a large input).
  int64_t small = plan.input_size, large = std::max<int64_t>(2, plan.input_size * 2);
  while (last_block_spatial(plan.options, large) < 2 && large < (int64_t{1} << 61)) large *= 2;
  while (large - small > 1) {
    const int64_t middle = small + (large - small) / 2;
    if (last_block_spatial(plan.options, middle) >= 2) {
      large = middle;
    } else {
      small = middle;
    }
  }
  const size_t blocks = plan.blocks.size();
  TORCH_CHECK_VALUE(false,
                    "batch norm in training needs more than 1 value per channel, but at batch ",
                    batch, " and input size ", plan.input_size, " dense block ", blocks,
                    " and the final norm (features.norm", blocks + 1,
                    ") see 1x1 feature maps: 1 value per channel; use a batch of 2 or more, or an "
                    "input size of ",
                    large, " or more");
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
    block.bottleneck_width = checked_mul(options.bn_size(), k, "bottleneck width");
    block.out_channels =
        checked_add(channels, checked_mul(config[b], k, "channel count"), "channel count");
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
  // Every count a caller may ask for, so that an architecture too large to describe fails
  // here, once, with a clear message.
  plan.num_parameters();
  plan.forward_macs();
  int64_t activations = 0;
  for (const auto& block : plan.blocks) {
    const int64_t area = checked_mul(block.spatial, block.spatial, "activation memory");
    const int64_t widest = block.out_channels + block.bottleneck_width + block.growth_rate;
    // Each layer's input is at most the block's output; a layer keeps about that much.
    activations =
        checked_add(activations, product("activation memory", block.num_layers + 2, widest, area),
                    "activation memory");
  }
  checked_mul(activations, kMemoryPlanHeadroom, "activation memory");
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
  constexpr const char* kWhat = "parameter count";
  const auto add = [](int64_t a, int64_t b) { return checked_add(a, b, kWhat); };
  const int64_t stem_kernel = options.uses_small_stem() ? kSmallStemKernel : kLargeStemKernel;
  const int64_t c0 = options.num_init_features();
  int64_t count = product(kWhat, options.in_channels(), c0, stem_kernel, stem_kernel);
  if (!options.uses_small_stem()) count = add(count, product(kWhat, 2, c0));  // norm0
  for (const auto& block : blocks) {
    for (int64_t l = 0; l < block.num_layers; ++l) {
      const int64_t c = block.layer_in_channels(l);
      const int64_t b = block.bottleneck_width;
      count = add(count, product(kWhat, 2, c));  // norm1
      if (b > 0) {
        count = add(count, product(kWhat, c, b));
        count = add(count, product(kWhat, 2, b));
        count = add(count, product(kWhat, b, block.growth_rate, kDenseConvKernelArea));
      } else {
        count = add(count, product(kWhat, c, block.growth_rate, kDenseConvKernelArea));
      }
    }
    if (block.transition_out_channels > 0) {
      count = add(count, product(kWhat, 2, block.out_channels));
      count = add(count, product(kWhat, block.out_channels, block.transition_out_channels));
    }
  }
  count = add(count, product(kWhat, 2, final_channels));                      // final norm
  count = add(count, product(kWhat, final_channels, options.num_classes()));  // classifier
  return add(count, options.num_classes());
}

int64_t ArchitecturePlan::forward_macs() const {
  constexpr const char* kWhat = "multiply-add count";
  const auto add = [](int64_t a, int64_t b) { return checked_add(a, b, kWhat); };
  const int64_t stem_kernel = options.uses_small_stem() ? kSmallStemKernel : kLargeStemKernel;
  const int64_t stem_conv_spatial =
      options.uses_small_stem() ? input_size : (input_size + 2 * 3 - kLargeStemKernel) / 2 + 1;
  int64_t macs = product(kWhat, options.in_channels(), options.num_init_features(), stem_kernel,
                         stem_kernel, stem_conv_spatial, stem_conv_spatial);
  for (const auto& block : blocks) {
    const int64_t area = product(kWhat, block.spatial, block.spatial);
    for (int64_t l = 0; l < block.num_layers; ++l) {
      const int64_t c = block.layer_in_channels(l);
      const int64_t b = block.bottleneck_width;
      if (b > 0) {
        macs = add(macs, product(kWhat, c, b, area));
        macs = add(macs, product(kWhat, b, block.growth_rate, kDenseConvKernelArea, area));
      } else {
        macs = add(macs, product(kWhat, c, block.growth_rate, kDenseConvKernelArea, area));
      }
    }
    if (block.transition_out_channels > 0) {
      macs = add(macs, product(kWhat, block.out_channels, block.transition_out_channels, area));
    }
  }
  return add(macs, product(kWhat, final_channels, options.num_classes()));
}

}  // namespace densenet

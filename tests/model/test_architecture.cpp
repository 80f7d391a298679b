#include "densenet/model/architecture.h"
#include "densenet/model/presets.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

namespace densenet {
namespace {

TEST(Architecture, DepthMatchesPresetNames) {
  const std::pair<const char*, int64_t> expected[] = {
      {"densenet121", 121},     {"densenet161", 161},     {"densenet169", 169},
      {"densenet201", 201},     {"densenet-bc-100", 100}, {"densenet-bc-190", 190},
      {"densenet-bc-250", 250}, {"densenet-bc-40", 40},   {"densenet-40", 40},
  };
  for (const auto& [name, depth] : expected) {
    EXPECT_EQ(plan_architecture(preset_options(name)).depth(), depth) << name;
  }
  // The paper's DenseNet-264 (blocks 6,12,64,48) has 2*130 + 5 = 265 layers by the same count
  // that makes DenseNet-121 121; the name is the paper's.
  EXPECT_EQ(plan_architecture(preset_options("densenet264")).depth(), 265);
}

TEST(Architecture, TorchvisionParameterCounts) {
  EXPECT_EQ(plan_architecture(preset_options("densenet121")).num_parameters(), 7978856);
  EXPECT_EQ(plan_architecture(preset_options("densenet161")).num_parameters(), 28681000);
  EXPECT_EQ(plan_architecture(preset_options("densenet169")).num_parameters(), 14149480);
  EXPECT_EQ(plan_architecture(preset_options("densenet201")).num_parameters(), 20013928);
}

TEST(Architecture, ChannelsOfDenseNetBC100) {
  // MEMORY-FLOOR.md: block outputs 216x32x32, 300x16x16, 342x8x8.
  const ArchitecturePlan plan = plan_architecture(preset_options("densenet-bc-100"));
  ASSERT_EQ(plan.blocks.size(), 3u);
  EXPECT_EQ(plan.blocks[0].out_channels, 216);
  EXPECT_EQ(plan.blocks[0].spatial, 32);
  EXPECT_EQ(plan.blocks[0].transition_out_channels, 108);
  EXPECT_EQ(plan.blocks[1].out_channels, 300);
  EXPECT_EQ(plan.blocks[1].spatial, 16);
  EXPECT_EQ(plan.blocks[2].out_channels, 342);
  EXPECT_EQ(plan.blocks[2].spatial, 8);
  EXPECT_EQ(plan.blocks[2].transition_out_channels, 0);
  EXPECT_EQ(plan.blocks[0].bottleneck_width, 48);
  EXPECT_EQ(plan.final_channels, 342);
}

TEST(Architecture, ChannelsOfDenseNet40) {
  const ArchitecturePlan plan = plan_architecture(preset_options("densenet-40"));
  EXPECT_EQ(plan.blocks[0].out_channels, 168);
  EXPECT_EQ(plan.blocks[1].out_channels, 312);
  EXPECT_EQ(plan.blocks[2].out_channels, 456);
  EXPECT_EQ(plan.blocks[2].spatial, 8);
}

TEST(Architecture, CompressionRoundsDown) {
  // 10 + 2*5 = 20 channels, int(20 * 0.7) = 13 (20 * 0.7 is 13.999... in binary).
  const ArchitecturePlan plan = plan_architecture(
      DenseNetOptions().num_init_features(10).growth_rate(5).block_config({2, 2}).compression(0.7));
  EXPECT_EQ(plan.blocks[0].transition_out_channels, static_cast<int64_t>(20 * 0.7));
}

TEST(Architecture, ImageNetStemSpatialSizes) {
  const ArchitecturePlan plan = plan_architecture(preset_options("densenet121"));
  EXPECT_EQ(plan.stem_out_spatial, 56);
  EXPECT_EQ(plan.blocks[3].spatial, 7);
  EXPECT_EQ(stem_output_size(preset_options("densenet121"), 225), 57);
}

TEST(Architecture, MultiplyAddsMatchTorchvisionDocs) {
  // torchvision documents 2.83, 7.73, 3.36, 4.29 GFLOPS (multiply-adds) at 224x224.
  EXPECT_NEAR(plan_architecture(preset_options("densenet121")).forward_macs() / 1e9, 2.83, 0.01);
  EXPECT_NEAR(plan_architecture(preset_options("densenet161")).forward_macs() / 1e9, 7.73, 0.01);
  EXPECT_NEAR(plan_architecture(preset_options("densenet169")).forward_macs() / 1e9, 3.36, 0.01);
  EXPECT_NEAR(plan_architecture(preset_options("densenet201")).forward_macs() / 1e9, 4.29, 0.01);
}

TEST(Architecture, TooSmallInputsAreRejected) {
  EXPECT_ERROR_CONTAINS(plan_architecture(preset_options("densenet121"), 16),
                        "input size 16 is too small for 4 dense blocks after the ImageNet stem");
  EXPECT_ERROR_CONTAINS(plan_architecture(DenseNetOptions().block_config({1, 1, 1, 1}), 4),
                        "the feature maps vanish before dense block 4");
  EXPECT_NO_THROW(plan_architecture(DenseNetOptions().block_config({1, 1, 1}), 4));
}

// Issue 21: gradcheck --block-config 1 --input-size 1 --batch 1 ended in PyTorch's raw
// "Expected more than 1 value per channel when training".
TEST(Architecture, BatchNormNeedsMoreThanOneValuePerChannel) {
  const ArchitecturePlan one_pixel = plan_architecture(DenseNetOptions().block_config({1}), 1);
  EXPECT_EQ(smallest_training_batch(one_pixel), 2);
  EXPECT_THROW(check_batch_norm_values(one_pixel, 1), c10::ValueError);
  EXPECT_ERROR_CONTAINS(check_batch_norm_values(one_pixel, 1),
                        "batch norm in training needs more than 1 value per channel, but at batch "
                        "1 and input size 1 dense block 1 and the final norm (features.norm2) see "
                        "1x1 feature maps: 1 value per channel; use a batch of 2 or more, or an "
                        "input size of 2 or more");
  EXPECT_NO_THROW(check_batch_norm_values(one_pixel, 2));
  // Three blocks halve 4 to 1: 8 keeps 2x2 maps (7 gives 7, 3, 1).
  const ArchitecturePlan three = plan_architecture(DenseNetOptions().block_config({2, 2, 2}), 4);
  EXPECT_ERROR_CONTAINS(
      check_batch_norm_values(three, 1),
      "dense block 3 and the final norm (features.norm4) see 1x1 feature maps: 1 "
      "value per channel; use a batch of 2 or more, or an input size of 8 or more");
  EXPECT_EQ(
      smallest_training_batch(plan_architecture(DenseNetOptions().block_config({2, 2, 2}), 8)), 1);
  EXPECT_NO_THROW(
      check_batch_norm_values(plan_architecture(DenseNetOptions().block_config({2, 2, 2}), 8), 1));
  // ImageNet stem: 32 -> 8 after the stem, then 4, 2, 1; 61 is the smallest input with 2x2.
  const DenseNetOptions densenet121 = preset_options("densenet121");
  EXPECT_ERROR_CONTAINS(
      check_batch_norm_values(plan_architecture(densenet121, 32), 1),
      "dense block 4 and the final norm (features.norm5) see 1x1 feature maps: 1 "
      "value per channel; use a batch of 2 or more, or an input size of 61 or more");
  EXPECT_EQ(plan_architecture(densenet121, 61).blocks.back().spatial, 2);
  EXPECT_EQ(plan_architecture(densenet121, 60).blocks.back().spatial, 1);
  EXPECT_ERROR_CONTAINS(check_batch_norm_values(plan_architecture(densenet121), 0),
                        "batch must be >= 1, got 0");
}

TEST(Architecture, CompressionThatEmptiesATransitionIsRejected) {
  EXPECT_ERROR_CONTAINS(
      plan_architecture(
          DenseNetOptions().num_init_features(2).growth_rate(1).block_config({1, 1}).compression(
              0.1)),
      "compression 0.1 leaves transition 1 with 0 of its 3 channels");
}

// Issue 12: a count that does not fit int64 is an error, never a wrapped (negative) number.
TEST(Architecture, CountsThatOverflowAreRejected) {
  const DenseNetOptions huge =
      DenseNetOptions()
          .growth_rate(DenseNetOptions::kMaxChannels)
          .block_config({DenseNetOptions::kMaxLayersPerBlock, DenseNetOptions::kMaxLayersPerBlock});
  EXPECT_ERROR_CONTAINS(plan_architecture(huge),
                        "this architecture is too large: its parameter count overflows");
  // Parameters fit, multiply-adds at 65536x65536 do not.
  EXPECT_ERROR_CONTAINS(
      plan_architecture(preset_options("densenet121").input_size(65536).growth_rate(100000)),
      "its multiply-add count overflows a 64-bit integer");
  // The largest configuration still describable gives positive counts.
  const ArchitecturePlan large =
      plan_architecture(DenseNetOptions().growth_rate(1000).block_config({100, 100, 100}));
  EXPECT_GT(large.num_parameters(), 0);
  EXPECT_GT(large.forward_macs(), 0);
}

TEST(Architecture, OptionsBeyondTheBoundsAreRejected) {
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().growth_rate(2000000000)),
                        "growth_rate must be <= 1048576, got 2000000000");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().block_config({1000000000})),
                        "block_config[0] must be <= 100000 layers, got 1000000000");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().input_size(2000000000)),
                        "input_size must be <= 65536, got 2000000000");
}

TEST(Architecture, StemIsExplicitOrFollowsTheInputSize) {
  EXPECT_EQ(DenseNetOptions().input_size(32).effective_stem(), Stem::kCifar);
  EXPECT_EQ(DenseNetOptions().input_size(64).effective_stem(), Stem::kImageNet);
  EXPECT_EQ(DenseNetOptions().input_size(64).stem(Stem::kCifar).effective_stem(), Stem::kCifar);
  // The ImageNet stem divides the spatial size by 4 before the first block.
  EXPECT_EQ(plan_architecture(DenseNetOptions().stem(Stem::kImageNet)).stem_out_spatial, 8);
  EXPECT_EQ(parse_stem(stem_name(Stem::kImageNet)), Stem::kImageNet);
  EXPECT_ERROR_CONTAINS(parse_stem("small"), "unknown stem 'small': use cifar or imagenet");
}

}  // namespace
}  // namespace densenet

#include "densenet/model/options.h"
#include "densenet/model/presets.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

namespace densenet {
namespace {

TEST(Options, DefaultsAreTheOriginalDefaultNetwork) {
  DenseNetOptions o;
  EXPECT_EQ(o.in_channels(), 3);
  EXPECT_EQ(o.num_init_features(), 24);
  EXPECT_EQ(o.effective_growth_rate(), 12);  // num_init_features / 2, as the original
  EXPECT_EQ(o.block_config(), (std::vector<int64_t>{12, 12, 12}));
  EXPECT_EQ(o.bn_size(), 0);
  EXPECT_EQ(o.compression(), 1.0);
  EXPECT_EQ(o.num_classes(), 100);
  EXPECT_TRUE(o.uses_small_stem());
  EXPECT_EQ(o.memory(), MemoryMode::kNaive);
  EXPECT_NO_THROW(validate(o));
}

TEST(Options, GrowthRateFollowsInitFeaturesUnlessSet) {
  EXPECT_EQ(DenseNetOptions().num_init_features(64).effective_growth_rate(), 32);
  EXPECT_EQ(DenseNetOptions().num_init_features(64).growth_rate(12).effective_growth_rate(), 12);
}

TEST(Options, StemRule) {
  EXPECT_TRUE(DenseNetOptions().input_size(32).uses_small_stem());
  EXPECT_FALSE(DenseNetOptions().input_size(33).uses_small_stem());
}

TEST(Options, InvalidOptionsSayWhatIsWrong) {
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().compression(0)),
                        "compression must be in (0, 1], got 0");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().compression(1.5)),
                        "compression must be in (0, 1]");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().block_config({})), "block_config is empty");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().block_config({6, 0})),
                        "block_config[1] must be >= 1 layer, got 0");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().growth_rate(0)),
                        "growth_rate must be >= 1, got 0");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().num_init_features(1)),
                        "growth_rate defaults to num_init_features / 2 = 0");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().in_channels(0)), "in_channels must be >= 1");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().bn_size(-1)), "bn_size must be >= 0");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().drop_rate(1.0)), "drop_rate must be in [0, 1)");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().num_classes(0)), "num_classes must be >= 1");
  EXPECT_ERROR_CONTAINS(validate(DenseNetOptions().input_size(0)), "input_size must be >= 1");
}

TEST(Options, MemoryModeNames) {
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    EXPECT_EQ(parse_memory_mode(memory_mode_name(mode)), mode);
  }
  EXPECT_ERROR_CONTAINS(parse_memory_mode("fast"), "unknown memory mode 'fast'");
}

TEST(Options, IntList) {
  EXPECT_EQ(parse_int_list("6,12,24,16"), (std::vector<int64_t>{6, 12, 24, 16}));
  EXPECT_EQ(parse_int_list("7"), (std::vector<int64_t>{7}));
  EXPECT_EQ(format_int_list({6, 12}), "6,12");
  EXPECT_ERROR_CONTAINS(parse_int_list(""), "comma-separated list of integers");
  EXPECT_ERROR_CONTAINS(parse_int_list("6,,12"), "comma-separated list of integers");
  EXPECT_ERROR_CONTAINS(parse_int_list("6,12,"), "comma-separated list of integers");
  EXPECT_ERROR_CONTAINS(parse_int_list("6;12"), "comma-separated list of integers");
  EXPECT_ERROR_CONTAINS(parse_int_list("99999999999999999999"), "comma-separated list of integers");
}

TEST(Presets, AllValidAndNamed) {
  EXPECT_GE(presets().size(), 9u);
  for (const auto& preset : presets()) {
    EXPECT_NO_THROW(validate(preset.options)) << preset.name;
    EXPECT_NO_THROW(preset_options(preset.name));
  }
  EXPECT_ERROR_CONTAINS(preset_options("resnet50"),
                        "unknown architecture 'resnet50': choose one of");
}

TEST(Presets, MatchThePapers) {
  const DenseNetOptions d121 = preset_options("densenet121");
  EXPECT_EQ(d121.effective_growth_rate(), 32);
  EXPECT_EQ(d121.block_config(), (std::vector<int64_t>{6, 12, 24, 16}));
  EXPECT_EQ(d121.num_init_features(), 64);
  EXPECT_EQ(d121.bn_size(), 4);
  EXPECT_EQ(d121.compression(), 0.5);
  EXPECT_FALSE(d121.uses_small_stem());

  const DenseNetOptions d40 = preset_options("densenet-40");
  EXPECT_EQ(d40.effective_growth_rate(), 12);
  EXPECT_EQ(d40.bn_size(), 0);
  EXPECT_EQ(d40.compression(), 1.0);
  EXPECT_EQ(d40.num_init_features(), 24);
  EXPECT_TRUE(d40.uses_small_stem());

  EXPECT_EQ(preset_options("densenet-bc-190").effective_growth_rate(), 40);
  EXPECT_EQ(preset_options("densenet-bc-250").effective_growth_rate(), 24);
  EXPECT_EQ(preset_options("densenet161").effective_growth_rate(), 48);
}

}  // namespace
}  // namespace densenet

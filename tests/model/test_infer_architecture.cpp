// Issue 21 item 7: weights that do not fit say what they are, from their shapes, in a short
// error with the flags that fit them.
#include "densenet/io/state_dict.h"
#include "densenet/io/weights.h"
#include "densenet/model/densenet.h"
#include "densenet/model/infer_architecture.h"
#include "densenet/model/load_weights.h"
#include "densenet/model/presets.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace densenet {
namespace {

StateDict weights_of(const DenseNetOptions& options) {
  return state_dict(*DenseNet(options));
}

// The error load_densenet_weights throws for `weights` into a model of `options`.
std::string load_error(const StateDict& weights, const DenseNetOptions& options,
                       const std::string& dataset = "") {
  DenseNet model(options);
  try {
    load_densenet_weights(*model, weights, {"run/best.pth", "", dataset});
  } catch (const c10::Error& error) {
    return error.what_without_backtrace();
  }
  ADD_FAILURE() << "the weights loaded";
  return "";
}

int64_t lines(const std::string& text) {
  return 1 + std::count(text.begin(), text.end(), '\n');
}

TEST(InferArchitecture, EveryPresetIsRecognised) {
  for (const Preset& preset : presets()) {
    const DenseNetOptions inferred = infer_architecture(weights_of(preset.options));
    EXPECT_EQ(describe_architecture(inferred), preset.name);
    EXPECT_TRUE(architecture_differences(inferred, preset.options).empty()) << preset.name;
  }
}

TEST(InferArchitecture, ReadsEveryFieldFromTheShapes) {
  const DenseNetOptions options = DenseNetOptions()
                                      .stem(Stem::kImageNet)
                                      .in_channels(1)
                                      .num_init_features(10)
                                      .growth_rate(6)
                                      .block_config({2, 3, 1})
                                      .bn_size(3)
                                      .compression(0.7)
                                      .num_classes(7)
                                      .input_size(64);
  const DenseNetOptions inferred = infer_architecture(weights_of(options));
  EXPECT_EQ(inferred.effective_stem(), Stem::kImageNet);
  EXPECT_EQ(inferred.in_channels(), 1);
  EXPECT_EQ(inferred.num_init_features(), 10);
  EXPECT_EQ(inferred.effective_growth_rate(), 6);
  EXPECT_EQ(inferred.block_config(), (std::vector<int64_t>{2, 3, 1}));
  EXPECT_EQ(inferred.bn_size(), 3);
  EXPECT_EQ(inferred.compression(), 0.7);  // the shortest decimal that fits 22 -> 15, 33 -> 23
  EXPECT_EQ(inferred.num_classes(), 7);
  // A plain layer (no bottleneck, conv1 3x3 to k) and a single block (no transition).
  const DenseNetOptions plain =
      infer_architecture(weights_of(preset_options("densenet-40").block_config({3})));
  EXPECT_EQ(plain.bn_size(), 0);
  EXPECT_EQ(plain.effective_growth_rate(), 12);
  EXPECT_EQ(plain.block_config(), (std::vector<int64_t>{3}));
}

TEST(InferArchitecture, ReadsTheOtherKeyLayouts) {
  const DenseNetOptions options = preset_options("densenet-bc-100").block_config({2, 2, 2});
  for (const KeyLayout layout : {KeyLayout::Gpleiss, KeyLayout::Wandering007}) {
    const StateDict theirs = from_torchvision_keys(weights_of(options), layout);
    const DenseNetOptions inferred = infer_architecture(to_torchvision_keys(theirs));
    EXPECT_TRUE(architecture_differences(inferred, options).empty()) << key_layout_name(layout);
  }
}

TEST(InferArchitecture, RefusesWhatIsNoDenseNet) {
  StateDict weights = weights_of(preset_options("densenet-40").block_config({1, 1}));
  weights.erase("features.conv0.weight");
  EXPECT_ERROR_CONTAINS(infer_architecture(weights), "no 'features.conv0.weight'");
  StateDict linear;
  linear.insert("weight", torch::zeros({2, 3}));
  EXPECT_ERROR_CONTAINS(infer_architecture(linear), "cannot read a DenseNet");
}

TEST(InferArchitecture, OverridesFollowTheBottleneckStemRule) {
  // A new growth rate moves a BC model's stem to 2k, so 12 stem channels need no flag...
  const DenseNetOptions bc100 = preset_options("densenet-bc-100");
  DenseNetOptions small = bc100;
  small.growth_rate(6).num_init_features(12).block_config({2, 2, 2});
  EXPECT_EQ(format_overrides(overrides_between(bc100, small)),
            "--growth-rate 6 --block-config 2,2,2");
  // ...but other stem channels do, and so do they for a plain model (no 2k rule).
  small.num_init_features(16);
  EXPECT_EQ(format_overrides(overrides_between(bc100, small)),
            "--num-init-features 16 --growth-rate 6 --block-config 2,2,2");
  DenseNetOptions plain = preset_options("densenet-40");
  plain.growth_rate(6).num_init_features(12);
  EXPECT_EQ(format_overrides(overrides_between(preset_options("densenet-40"), plain)),
            "--num-init-features 12 --growth-rate 6");
}

// The case: a run trained with --block-config 2,2,2 --growth-rate 6, loaded as
// densenet-bc-100. Before, the error listed ~45 keys and ended with "add
// --num-init-features 12".
TEST(LoadDenseNetWeights, NamesWhatTheWeightsAreAndTheFlagsThatFitThem) {
  const DenseNetOptions bc100 = preset_options("densenet-bc-100");
  DenseNetOptions trained = bc100;
  trained.growth_rate(6).num_init_features(12).block_config({2, 2, 2});
  const std::string message = load_error(weights_of(trained), bc100);
  EXPECT_EQ(message.substr(0, message.find('\n')),
            "'run/best.pth' holds densenet-bc-100 with --growth-rate 6 --block-config 2,2,2, "
            "not densenet-bc-100: use --growth-rate 6 --block-config 2,2,2");
  EXPECT_NE(message.find("\n  growth-rate: 6 in the weights, 12 in the model"), std::string::npos)
      << message;
  EXPECT_NE(message.find("\n  block-config: 2,2,2 in the weights, 16,16,16 in the model"),
            std::string::npos)
      << message;
  EXPECT_EQ(lines(message), 4) << message;  // the stem channels are the third difference
}

TEST(LoadDenseNetWeights, NamesThePresetTheWeightsAre) {
  const std::string message =
      load_error(weights_of(preset_options("densenet121")), preset_options("densenet169"));
  EXPECT_EQ(message.substr(0, message.find('\n')),
            "'run/best.pth' holds densenet121, not densenet169: use --arch densenet121");
  EXPECT_EQ(lines(message), 2) << message;  // block-config
}

TEST(LoadDenseNetWeights, NamesTheNearerPresetWhenThatNeedsFewerFlags) {
  DenseNetOptions trained = preset_options("densenet-bc-100");
  trained.growth_rate(6).num_init_features(12).block_config({2, 2, 2});
  const std::string message = load_error(weights_of(trained), preset_options("densenet-40"));
  EXPECT_NE(message.find(", not densenet-40: use --arch densenet-bc-100 --growth-rate 6 "
                         "--block-config 2,2,2\n"),
            std::string::npos)
      << message;
}

TEST(LoadDenseNetWeights, LeavesWhatTheDatasetDecidesToTheDataset) {
  const DenseNetOptions model = preset_options("densenet-bc-40").block_config({2, 2});
  DenseNetOptions trained = model;
  trained.in_channels(1).block_config({3, 3});
  const std::string message = load_error(weights_of(trained), model, "synthetic");
  EXPECT_NE(message.find(": use --block-config 3,3; the dataset (synthetic) decides in-channels "
                         "and num-classes\n"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("\n  in-channels: 1 in the weights, 3 in the model (synthetic's)"),
            std::string::npos)
      << message;
}

TEST(LoadDenseNetWeights, SameArchitectureFallsBackToAShortKeyListing) {
  const DenseNetOptions options = preset_options("densenet-bc-100");
  StateDict weights = weights_of(options);
  weights.erase("classifier.bias");
  const std::string message = load_error(weights, options);
  EXPECT_NE(message.find("'run/best.pth' do not fit the model: cannot load state dict"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("missing keys (1): classifier.bias"), std::string::npos) << message;
  EXPECT_EQ(lines(message), 2) << message;
}

}  // namespace
}  // namespace densenet

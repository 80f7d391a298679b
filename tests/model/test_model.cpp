#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"
#include "densenet/model/presets.h"

#include "support/expect_error.h"
#include "support/tensor_compare.h"

#include <gtest/gtest.h>

#include <cmath>

namespace densenet {
namespace {

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

TEST(Model, ParameterCountsOfEveryPresetMatchThePlan) {
  for (const auto& preset : presets()) {
    DenseNet model(preset.options);
    EXPECT_EQ(count_parameters(*model), model->plan.num_parameters()) << preset.name;
  }
}

TEST(Model, TorchvisionParameterCounts) {
  EXPECT_EQ(count_parameters(*DenseNet(preset_options("densenet121"))), 7978856);
  EXPECT_EQ(count_parameters(*DenseNet(preset_options("densenet169"))), 14149480);
}

TEST(Model, PlainSmallStemKeys) {
  // Plain layers have norm1/conv1 only; the small stem has no norm0; three blocks end in norm4.
  DenseNet model(DenseNetOptions().num_init_features(4).growth_rate(2).block_config({1, 1, 1}));
  std::vector<std::string> keys;
  for (const auto& item : state_dict(*model)) keys.push_back(item.key());
  const std::vector<std::string> expected_prefix = {
      "features.conv0.weight",
      "features.denseblock1.denselayer1.norm1.weight",
      "features.denseblock1.denselayer1.norm1.bias",
      "features.denseblock1.denselayer1.norm1.running_mean",
      "features.denseblock1.denselayer1.norm1.running_var",
      "features.denseblock1.denselayer1.norm1.num_batches_tracked",
      "features.denseblock1.denselayer1.conv1.weight",
      "features.transition1.norm.weight",
  };
  ASSERT_GE(keys.size(), expected_prefix.size());
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.begin() + expected_prefix.size()),
            expected_prefix);
  EXPECT_EQ(keys[keys.size() - 3], "features.norm4.num_batches_tracked");
  EXPECT_EQ(keys.back(), "classifier.bias");
  EXPECT_EQ(state_dict(*model)["features.denseblock1.denselayer1.conv1.weight"].sizes(),
            (std::vector<int64_t>{2, 4, 3, 3}));
}

TEST(Model, InitialisationIsTorchvisions) {
  torch::manual_seed(0);
  DenseNet model(preset_options("densenet-bc-100"));
  const StateDict state = state_dict(*model);
  // kaiming_normal_(fan_in, gain sqrt(2)): std = sqrt(2 / fan_in). 3x3 conv of block 3 has
  // fan_in 48*9 and 48*12*9 ~ 5000 samples: the sample std is within ~3% of the target.
  const torch::Tensor w = state["features.denseblock3.denselayer16.conv2.weight"];
  const double expected_std = std::sqrt(2.0 / (48 * 9));
  EXPECT_NEAR(w.std().item<double>(), expected_std, 0.05 * expected_std);
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.05 * expected_std);
  EXPECT_TRUE(torch::equal(state["features.norm4.weight"], torch::ones({342})));
  EXPECT_TRUE(torch::equal(state["features.norm4.bias"], torch::zeros({342})));
  EXPECT_TRUE(torch::equal(state["classifier.bias"], torch::zeros({10})));
  // nn.Linear's default weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  EXPECT_LE(state["classifier.weight"].abs().max().item<double>(), 1.0 / std::sqrt(342.0));
}

TEST(Model, ForwardShapes) {
  DenseNet model(DenseNetOptions()
                     .in_channels(1)
                     .num_init_features(8)
                     .block_config({2, 2})
                     .num_classes(10)
                     .bn_size(2)
                     .compression(0.5));
  EXPECT_EQ(model->forward(torch::randn({3, 1, 28, 28})).sizes(), (std::vector<int64_t>{3, 10}));
  // Other sizes than input_size, and non-square, work as in torchvision.
  EXPECT_EQ(model->forward(torch::randn({2, 1, 17, 9})).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(Model, BadInputsAreClearErrors) {
  DenseNet model(DenseNetOptions().in_channels(3).num_init_features(8).block_config({1, 1, 1}));
  EXPECT_ERROR_CONTAINS(model->forward(torch::randn({2, 1, 32, 32})),
                        "DenseNet expects input of shape (N, 3, H, W), got [2, 1, 32, 32]");
  EXPECT_ERROR_CONTAINS(model->forward(torch::randn({3, 32, 32})), "got [3, 32, 32]");
  EXPECT_ERROR_CONTAINS(model->forward(torch::randn({0, 3, 32, 32})), "empty batch");
  EXPECT_ERROR_CONTAINS(model->forward(torch::randn({1, 3, 2, 32})),
                        "input size 2 is too small for 3 dense blocks");
}

TEST(Model, RunsInDouble) {
  DenseNet model(
      DenseNetOptions().num_init_features(4).growth_rate(2).block_config({1, 2}).bn_size(2));
  model->to(torch::kFloat64);
  const torch::Tensor out = model->forward(torch::randn({2, 3, 8, 8}, torch::kFloat64));
  EXPECT_EQ(out.scalar_type(), torch::kFloat64);
  // As in PyTorch, the BN counters stay int64 (LibTorch's default Module::to converts them).
  EXPECT_EQ(state_dict(*model)["features.norm3.num_batches_tracked"].scalar_type(), torch::kInt64);
  EXPECT_EQ(state_dict(*model)["features.norm3.running_var"].scalar_type(), torch::kFloat64);
  EXPECT_ERROR_CONTAINS(model->to(torch::kInt32), "must be floating point");
}

TEST(Model, CloneIsDeepAndIdentical) {
  DenseNet model(
      DenseNetOptions().num_init_features(4).growth_rate(2).block_config({2, 2}).bn_size(2));
  model->eval();
  auto copy = std::dynamic_pointer_cast<DenseNetImpl>(model->clone());
  ASSERT_NE(copy, nullptr);
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  EXPECT_TRUE(testing::tensors_identical("logits", copy->forward(x), model->forward(x)));
  {
    torch::NoGradGuard no_grad;
    copy->classifier->bias.add_(1.0);
  }
  EXPECT_FALSE(torch::equal(copy->forward(x), model->forward(x)));
}

TEST(Model, DropoutOnlyInTraining) {
  DenseNet model(
      DenseNetOptions().num_init_features(4).growth_rate(2).block_config({2}).drop_rate(0.5));
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));
  model->train();
  torch::manual_seed(1);
  const torch::Tensor a = model->forward(x);
  torch::manual_seed(2);
  EXPECT_FALSE(torch::equal(a, model->forward(x)));
}

}  // namespace
}  // namespace densenet

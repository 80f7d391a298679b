#include "densenet/io/pth_file.h"
#include "densenet/io/state_dict.h"
#include "densenet/io/weights.h"
#include "densenet/model/presets.h"
#include "densenet/train/model_ema.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <string>

#include "support/expect_error.h"
#include "support/tensor_compare.h"

namespace densenet::train {
namespace {

// Written by tests/reference/make_ema_reference.py (the golden fixture).
std::string reference_path(const std::string& name) {
  return std::string(DENSENET_GOLDEN_DIR) + "/model_ema/" + name + ".pth";
}

// The reference's CONFIG: DenseNet-BC, 3x3 stem, blocks 2,2, k=4, bottleneck 2k, 5 classes.
DenseNetOptions tiny_options() {
  return DenseNetOptions()
      .in_channels(3)
      .num_init_features(8)
      .growth_rate(4)
      .block_config({2, 2})
      .bn_size(2)
      .compression(0.5)
      .drop_rate(0)
      .num_classes(5)
      .input_size(16);
}

ModelEmaOptions options_of(const pth::Value& dict) {
  ModelEmaOptions options;
  for (const auto& item : dict.items()) {
    const std::string& key = item.first.as_string();
    if (key == "decay") options.decay = item.second.as_float();
    if (key == "min_decay") options.min_decay = item.second.as_float();
    if (key == "update_after_step") options.update_after_step = item.second.as_int();
    if (key == "use_warmup") options.use_warmup = item.second.as_bool();
    if (key == "warmup_gamma") options.warmup_gamma = item.second.as_float();
    if (key == "warmup_power") options.warmup_power = item.second.as_float();
  }
  return options;
}

// Every case's decays and EMA states after each of six updates equal ModelEmaV3's, bit for bit:
// the same lerp kernel on the same float32 values (num_batches_tracked copied, not averaged).
TEST(ModelEma, UpdatesMatchTimmModelEmaV3) {
  for (const char* name : {"plain", "warmup", "warmup_min_decay", "update_after_step"}) {
    SCOPED_TRACE(name);
    const pth::Value root = pth::read_checkpoint(reference_path(name)).root;
    const ModelEmaOptions options = options_of(*root.find("options"));
    DenseNet model(tiny_options());
    load_state_dict(*model, tensors_of(*root.find("initial"), name), true);
    ModelEma ema(model, options);
    const auto& states = root.find("model")->elements();
    const auto& expected = root.find("ema")->elements();
    const auto& decays = root.find("decays")->elements();
    ASSERT_EQ(states.size(), 6u);
    for (size_t i = 0; i < states.size(); ++i) {
      const int64_t step = static_cast<int64_t>(i) + 1;
      SCOPED_TRACE("step " + std::to_string(step));
      EXPECT_EQ(model_ema_decay(options, step), decays[i].as_float());
      load_state_dict(*model, tensors_of(states[i], name), true);
      ema.update(*model, step);
      const StateDict want = tensors_of(expected[i], name);
      const StateDict have = ema.state_dict();
      ASSERT_EQ(have.size(), want.size());
      for (const auto& item : want) {
        ASSERT_NE(have.find(item.key()), nullptr) << item.key();
        EXPECT_TRUE(testing::tensors_identical(item.key(), *have.find(item.key()), item.value()));
      }
    }
  }
}

// The EMA is a copy, not an alias: training the model moves it only through update(). Making
// it draws nothing from the default generator, so a run trains the same weights with or without.
TEST(ModelEma, IsACopyAndLeavesTheGeneratorAlone) {
  torch::manual_seed(5);
  DenseNet model(tiny_options());
  const torch::Tensor before = torch::rand({4});
  torch::manual_seed(5);
  DenseNet again(tiny_options());
  ModelEma ema(again);
  EXPECT_TRUE(testing::tensors_identical("the next random draw", torch::rand({4}), before));
  for (const auto& item : ema.state_dict()) {
    EXPECT_TRUE(
        testing::tensors_identical(item.key(), item.value(), *state_dict(*model).find(item.key())));
    EXPECT_FALSE(item.value().requires_grad()) << item.key();
  }
  {
    torch::NoGradGuard no_grad;
    again->classifier->weight.add_(1.0);
  }
  EXPECT_TRUE(testing::tensors_identical(
      "classifier.weight", *ema.state_dict().find("classifier.weight"), model->classifier->weight));
  EXPECT_FALSE(ema.module()->is_training());
}

// What a checkpoint stores comes back, strictly; another architecture is refused by name.
TEST(ModelEma, StateDictRoundTripsAndRefusesAnotherModel) {
  torch::manual_seed(1);
  DenseNet model(tiny_options());
  ModelEma ema(model, ModelEmaOptions{});
  torch::manual_seed(2);
  DenseNet other(tiny_options());
  ModelEma restored(other);
  StateDict saved;
  for (const auto& item : ema.state_dict()) saved.insert(item.key(), item.value().clone());
  restored.load_state_dict(saved, "last.pth");
  for (const auto& item : saved) {
    EXPECT_TRUE(testing::tensors_identical(item.key(), *restored.state_dict().find(item.key()),
                                           item.value()));
  }
  DenseNet wider(tiny_options().growth_rate(6));
  EXPECT_ERROR_CONTAINS(ModelEma(wider).load_state_dict(saved, "last.pth"),
                        "the model EMA in 'last.pth' does not fit this model");
  EXPECT_ERROR_CONTAINS(ema.update(*wider, 1), "model EMA: entry features.denseblock1");
  ModelEmaOptions bad;
  bad.decay = 1.5;
  EXPECT_ERROR_CONTAINS(ModelEma(model, bad), "decay must be in [0, 1], got 1.5");
}

}  // namespace
}  // namespace densenet::train

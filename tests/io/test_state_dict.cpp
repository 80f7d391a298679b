#include "densenet/io/state_dict.h"
#include "densenet/model/densenet.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

namespace densenet {
namespace {

DenseNetOptions tiny() {
  return DenseNetOptions()
      .num_init_features(4)
      .growth_rate(2)
      .block_config({1, 1})
      .bn_size(2)
      .num_classes(3);
}

TEST(StateDict, RoundTripsBetweenModels) {
  DenseNet a(tiny()), b(tiny());
  load_state_dict(*b, state_dict(*a));
  for (const auto& item : state_dict(*a)) {
    EXPECT_TRUE(torch::equal(item.value(), state_dict(*b)[item.key()])) << item.key();
  }
}

TEST(StateDict, StrictLoadListsEveryProblemAtOnce) {
  DenseNet model(tiny());
  StateDict state;
  for (const auto& item : state_dict(*model)) state.insert(item.key(), item.value() + 1);
  state.erase("classifier.bias");
  state.erase("features.conv0.weight");
  state.insert("features.extra.weight", torch::zeros({1}));
  state["features.norm3.weight"] = torch::zeros({5});
  const torch::Tensor before = model->classifier->weight.clone();
  try {
    load_state_dict(*model, state);
    ADD_FAILURE() << "expected an error";
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    EXPECT_NE(message.find("missing keys (2)"), std::string::npos) << message;
    EXPECT_NE(message.find("classifier.bias"), std::string::npos) << message;
    EXPECT_NE(message.find("features.conv0.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("\n  unexpected keys (1): features.extra.weight"), std::string::npos)
        << message;
    EXPECT_NE(message.find("features.norm3.weight: file has [5], model has ["), std::string::npos)
        << message;
  }
  EXPECT_TRUE(torch::equal(model->classifier->weight, before)) << "a failed load copied tensors";
}

// Issue 21 item 7: one line and a line per kind of problem, however many keys (a densenet169
// given densenet121 weights misses 200 keys; the error used to list 20 of each kind).
TEST(StateDict, StrictLoadErrorIsShort) {
  DenseNet model(tiny().block_config({1, 1, 1}));
  StateDict state;
  for (const auto& item : state_dict(*model)) state.insert("other." + item.key(), item.value());
  for (const auto& item : state_dict(*model)) {
    if (item.key().rfind("classifier.", 0) == 0) state.insert(item.key(), torch::zeros({1}));
  }
  try {
    load_state_dict(*model, state);
    ADD_FAILURE() << "expected an error";
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 3) << message;
    EXPECT_NE(message.find("\n  missing keys ("), std::string::npos) << message;
    EXPECT_NE(message.find(" more\n  unexpected keys ("), std::string::npos) << message;
    EXPECT_NE(
        message.find("\n  shape mismatches (2): classifier.weight: file has [1], model has ["),
        std::string::npos)
        << message;
  }
}

TEST(StateDict, NonStrictLoadsWhatMatches) {
  DenseNet model(tiny());
  StateDict state;
  state.insert("classifier.bias", torch::full({3}, 7.0));
  state.insert("not.a.key", torch::zeros({1}));
  load_state_dict(*model, state, /*strict=*/false);
  EXPECT_TRUE(torch::equal(model->classifier->bias, torch::full({3}, 7.0)));
}

TEST(StateDict, ConvertsDtypeOnLoad) {
  DenseNet model(tiny());
  StateDict state;
  for (const auto& item : state_dict(*model)) {
    state.insert(item.key(), item.value().is_floating_point() ? item.value().to(torch::kFloat64)
                                                              : item.value().clone());
  }
  EXPECT_NO_THROW(load_state_dict(*model, state));
  EXPECT_EQ(model->classifier->weight.scalar_type(), torch::kFloat32);
}

// The first tensor with a NaN or an infinity and how many; integer buffers are never counted.
TEST(StateDict, NonFiniteSummaryNamesTheFirstTensor) {
  DenseNet model(tiny());
  StateDict state;
  for (const auto& item : state_dict(*model)) state.insert(item.key(), item.value().clone());
  EXPECT_EQ(non_finite_summary(state), "");
  state["features.conv0.weight"].view(-1)[0] = std::numeric_limits<float>::infinity();
  state["features.conv0.weight"].view(-1)[3] = std::numeric_limits<float>::quiet_NaN();
  state["classifier.bias"][1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(non_finite_summary(state),
            "features.conv0.weight has 2 non-finite values (NaN or infinity) of 108, and 1 more "
            "tensor has some");
}

}  // namespace
}  // namespace densenet

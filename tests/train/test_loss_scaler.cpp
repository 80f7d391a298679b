// The dynamic loss scaler against torch.cuda.amp.GradScaler's semantics. PyTorch 1.13 cannot run
// GradScaler on the CPU (no CPU kernels for _amp_foreach_non_finite_check_and_unscale_ and
// _amp_update_scale_), so the expected values are GradScaler's formulas evaluated by hand
// (torch/cuda/amp/grad_scaler.py, aten/src/ATen/native/cuda/AmpKernels.cu), written out below.
#include "densenet/model/densenet.h"
#include "densenet/model/presets.h"
#include "densenet/train/loss_scaler.h"
#include "densenet/train/optimizer.h"
#include "densenet/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "support/expect_error.h"
#include "support/tensor_compare.h"

namespace densenet::train {
namespace {

LossScalerOptions options_with_interval(int64_t growth_interval) {
  LossScalerOptions options;
  options.growth_interval = growth_interval;
  return options;
}

TEST(LossScaler, DefaultsAreGradScalers) {
  const LossScaler scaler(LossScalerOptions{}, torch::kCPU);
  EXPECT_EQ(scaler.scale_value(), 65536.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  EXPECT_EQ(scaler.options().growth_factor, 2.0);
  EXPECT_EQ(scaler.options().backoff_factor, 0.5);
  EXPECT_EQ(scaler.options().growth_interval, 2000);
}

// _amp_update_scale_: a step with inf/NaN halves the scale and resets the count; growth_interval
// consecutive clean steps double it and reset the count.
TEST(LossScaler, UpdateFollowsGradScalersFormula) {
  LossScaler scaler(options_with_interval(3), torch::kCPU);
  struct Step {
    bool found_inf;
    double scale;     // after update()
    int64_t tracker;  // after update()
  };
  const std::vector<Step> steps = {
      {false, 65536, 1}, {false, 65536, 2}, {true, 32768, 0},   // backoff resets the count
      {false, 32768, 1}, {false, 32768, 2}, {false, 65536, 0},  // 3 clean steps: growth
      {false, 65536, 1}, {true, 32768, 0},  {true, 16384, 0},   // backoffs in a row
      {false, 16384, 1}, {false, 16384, 2}, {false, 32768, 0},  //
      {false, 32768, 1}, {false, 32768, 2}, {false, 65536, 0},  // and growths in a row
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    scaler.update(steps[i].found_inf);
    EXPECT_EQ(scaler.scale_value(), steps[i].scale) << "after step " << i + 1;
    EXPECT_EQ(scaler.growth_tracker(), steps[i].tracker) << "after step " << i + 1;
  }
}

// Growth that would overflow float32 keeps the scale (and still resets the count).
TEST(LossScaler, NeverGrowsPastFloat32) {
  LossScalerOptions options = options_with_interval(1);
  options.init_scale = std::ldexp(1.0, 127);
  LossScaler scaler(options, torch::kCPU);
  scaler.update(false);
  EXPECT_EQ(scaler.scale_value(), std::ldexp(1.0, 127));
  EXPECT_EQ(scaler.growth_tracker(), 0);
  scaler.update(true);
  EXPECT_EQ(scaler.scale_value(), std::ldexp(1.0, 126));
}

// _amp_foreach_non_finite_check_and_unscale_: every gradient times 1/S, inf and NaN found, the
// check made on the scaled values, parameters without a gradient left out.
TEST(LossScaler, UnscalesInPlaceAndFindsInfAndNaN) {
  LossScaler scaler(LossScalerOptions{}, torch::kCPU);
  torch::Tensor a = torch::zeros({3}, torch::requires_grad());
  torch::Tensor b = torch::zeros({2, 2}, torch::requires_grad());
  const torch::Tensor unused = torch::zeros({4}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({1.0f, -3.0f, 0.5f}) * 65536;
  b.mutable_grad() = torch::full({2, 2}, 0.25f * 65536);
  EXPECT_FALSE(scaler.unscale({a, b, unused}));
  EXPECT_TRUE(testing::tensors_identical("a.grad", a.grad(), torch::tensor({1.0f, -3.0f, 0.5f})));
  EXPECT_TRUE(testing::tensors_identical("b.grad", b.grad(), torch::full({2, 2}, 0.25f)));
  EXPECT_FALSE(unused.grad().defined());

  for (const float bad : {std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), std::nanf("")}) {
    b.mutable_grad() = torch::ones({2, 2});
    b.mutable_grad()[1][0] = bad;
    EXPECT_TRUE(scaler.unscale({a, b})) << bad;
  }

  // S < 1 after many backoffs: 1/S > 1, and a finite scaled gradient that overflows when
  // unscaled is not an inf found (GradScaler checks before multiplying).
  LossScalerOptions small;
  small.init_scale = 0.5;
  LossScaler below_one(small, torch::kCPU);
  a.mutable_grad() = torch::full({3}, std::numeric_limits<float>::max());
  EXPECT_FALSE(below_one.unscale({a}));
  EXPECT_TRUE(std::isinf(a.grad()[0].item<float>()));
}

TEST(LossScaler, BadOptionsAndStatesAreClearErrors) {
  LossScalerOptions options;
  options.growth_interval = 0;
  EXPECT_ERROR_CONTAINS(LossScaler(options, torch::kCPU), "growth_interval must be in [1, 2^31)");
  options = LossScalerOptions{};
  options.init_scale = 1e39;
  EXPECT_ERROR_CONTAINS(LossScaler(options, torch::kCPU), "init_scale must be a positive float32");
  LossScaler scaler(options_with_interval(3), torch::kCPU);
  EXPECT_ERROR_CONTAINS(scaler.load_state_dict(pth::Value::dict()), "no 'scale'");
  pth::Value state = scaler.state_dict();
  state.set_item(pth::Value::string("_growth_tracker"), pth::Value::integer(3));
  EXPECT_ERROR_CONTAINS(scaler.load_state_dict(state), "'_growth_tracker' 3 is outside [0, ");
  torch::Tensor half = torch::zeros({2}, torch::dtype(torch::kHalf).requires_grad(true));
  half.mutable_grad() = torch::ones({2}, torch::kHalf);
  EXPECT_ERROR_CONTAINS(scaler.unscale({half}), "loss scaling needs float32 parameters");
}

TEST(LossScaler, StateRoundTripsExactly) {
  LossScaler scaler(options_with_interval(5), torch::kCPU);
  for (const bool found_inf : {true, true, false, false, true, false}) scaler.update(found_inf);
  const pth::Value state = scaler.state_dict();
  LossScaler restored(options_with_interval(5), torch::kCPU);
  restored.load_state_dict(state);
  EXPECT_EQ(restored.scale_value(), scaler.scale_value());
  EXPECT_EQ(restored.scale_value(), 8192.0);
  EXPECT_EQ(restored.growth_tracker(), 1);
  EXPECT_EQ(float_of(*state.find("growth_factor")), 2.0);
  EXPECT_EQ(state.find("growth_interval")->as_int(), 5);
}

// The trainer's step (accumulate_gradients + step_optimizer) on a DenseNet under bfloat16
// autocast with SGD momentum: a step whose gradients hold an inf or a NaN leaves the parameters
// and the momentum buffers as they were and halves the scale; growth_interval clean steps
// double it again.
TEST(LossScaler, SkipsBf16StepsWithInfGradientsAndGrowsAfterCleanOnes) {
  DenseNetOptions options = preset_options("densenet-bc-100");
  options.block_config({2, 2}).growth_rate(4).num_init_features(8).num_classes(5).input_size(8);
  options.drop_rate(0).memory(MemoryMode::kNaive);  // every convolution in bfloat16
  torch::manual_seed(7);
  DenseNet model(options);
  model->train();
  OptimizerOptions sgd;
  sgd.lr = 0.05;
  Optimizer optimizer(*model, sgd);
  LossScaler scaler(options_with_interval(3), torch::kCPU);
  const torch::Tensor images = torch::randn({8, 3, 8, 8});
  const torch::Tensor labels = torch::randint(0, 5, {8}, torch::kInt64);
  const auto& parameters = optimizer.parameters();
  const auto backward = [&] {
    optimizer.zero_grad();
    const BatchResult result =
        accumulate_gradients(model, images, labels, 1, 0.0, nullptr, torch::kBFloat16, &scaler);
    ASSERT_TRUE(result.finite);
  };
  const auto snapshot = [&] {
    std::vector<torch::Tensor> values;
    for (const auto& p : parameters) values.push_back(p.detach().clone());
    return values;
  };
  const auto momentum = [&] {
    std::vector<torch::Tensor> buffers;
    const pth::Value state = optimizer.state_dict();
    for (const auto& item : state.find("state")->items()) {
      buffers.push_back(item.second.find("momentum_buffer")->as_tensor().clone());
    }
    return buffers;
  };

  // A clean step: taken, with the gradients of the unscaled loss, bit for bit (scaling by a
  // power of two commutes with every rounding of backward, bfloat16 ones included).
  optimizer.zero_grad();
  accumulate_gradients(model, images, labels, 1, 0.0, nullptr, torch::kBFloat16, nullptr);
  std::vector<torch::Tensor> plain_grads;
  for (const auto& p : parameters) plain_grads.push_back(p.grad().clone());
  backward();
  ASSERT_TRUE(step_optimizer(optimizer, 0.0, &scaler));
  for (size_t i = 0; i < parameters.size(); ++i) {
    ASSERT_TRUE(testing::tensors_identical("unscaled gradient " + std::to_string(i),
                                           parameters[i].grad(), plain_grads[i]));
  }
  EXPECT_EQ(scaler.scale_value(), 65536);
  EXPECT_EQ(scaler.growth_tracker(), 1);

  // Steps whose backward overflowed (an inf, then a NaN, as an overflowing float16 backward
  // leaves them): skipped, the scale halved each time.
  double expected_scale = 65536;
  for (const float bad : {std::numeric_limits<float>::infinity(), std::nanf("")}) {
    const std::vector<torch::Tensor> before = snapshot();
    const std::vector<torch::Tensor> buffers_before = momentum();
    ASSERT_EQ(buffers_before.size(), parameters.size());
    backward();
    parameters[3].mutable_grad().view(-1)[0] = bad;
    EXPECT_FALSE(step_optimizer(optimizer, /*clip=*/1.0, &scaler));
    expected_scale /= 2;
    EXPECT_EQ(scaler.scale_value(), expected_scale);
    EXPECT_EQ(scaler.growth_tracker(), 0);
    const std::vector<torch::Tensor> after = snapshot();
    const std::vector<torch::Tensor> buffers_after = momentum();
    for (size_t i = 0; i < parameters.size(); ++i) {
      EXPECT_TRUE(
          testing::tensors_identical("parameter " + std::to_string(i), after[i], before[i]));
      EXPECT_TRUE(testing::tensors_identical("momentum buffer " + std::to_string(i),
                                             buffers_after[i], buffers_before[i]));
    }
  }

  // growth_interval = 3 clean steps: taken, and the scale doubles at the third.
  for (int64_t step = 1; step <= 3; ++step) {
    const std::vector<torch::Tensor> before = snapshot();
    backward();
    EXPECT_TRUE(step_optimizer(optimizer, 0.0, &scaler));
    EXPECT_FALSE(snapshot()[0].equal(before[0])) << "clean step " << step << " was not taken";
    EXPECT_EQ(scaler.scale_value(), step < 3 ? 16384 : 32768) << "clean step " << step;
    EXPECT_EQ(scaler.growth_tracker(), step < 3 ? step : 0) << "clean step " << step;
  }
}

}  // namespace
}  // namespace densenet::train

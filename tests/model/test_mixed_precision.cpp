// Mixed precision (amp) in the three memory modes on the CPU: bfloat16 autocast (and float16 where
// this LibTorch's CPU autocast takes it) trains in naive, efficient and minimal, the modes agree
// with each other and with float32 within what the dtype's rounding and each model's
// conditioning allow, the efficient and minimal stages really compute in the 16-bit dtype, and
// the batch statistics of a dense block are formed in float32 or better whatever dtype its data
// has. (The same step comparison runs on a GPU in test_mixed_precision_cuda.cpp.)
#include "densenet/io/state_dict.h"
#include "densenet/model/dense_block.h"
#include "densenet/model/densenet.h"
#include "densenet/model/memory_plan.h"
#include "densenet/model/presets.h"
#include "densenet/train/amp.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "model/dense_stage.h"
#include "model/mixed_precision_harness.h"
#include "support/tensor_compare.h"

namespace densenet {
namespace {

using testing::AmpModesCase;
using train::AutocastGuard;

class AmpModesTest : public ::testing::TestWithParam<AmpModesCase> {};

TEST_P(AmpModesTest, TrainingAgreesAcrossMemoryModes) {
  const torch::ScalarType dtype = GetParam().dtype;
  if (!train::autocast_supported(torch::kCPU, dtype)) {
    GTEST_SKIP() << "this LibTorch's CPU autocast refuses " << dtype;
  }
  testing::check_amp_modes_agree(GetParam(), torch::kCPU);
}

INSTANTIATE_TEST_SUITE_P(Families, AmpModesTest, ::testing::ValuesIn(testing::amp_modes_cases()),
                         [](const auto& info) { return info.param.name(); });

// Under bfloat16 autocast a dense block in efficient or minimal mode keeps its buffer (and so its
// output) in bfloat16, and forms its batch statistics from those 16-bit values in double:
// statistics in bfloat16 would be off by up to a quarter at these values (around 100, where
// bfloat16's spacing is 0.5). Every layer's norm1 normalises the block's input channels, whose
// values are the input's own in a float32 run of the same bfloat16 values: their running
// statistics must be the float32 run's up to float32 rounding. (Later channels differ: they are
// bfloat16 convolutions' outputs.) Naive (LibTorch's batch norm) is held to the same for its
// first layer.
TEST(AmpStatistics, BlockStatisticsOfBf16DataAreFloat32) {
  for (MemoryMode mode : {MemoryMode::kEfficient, MemoryMode::kMinimal, MemoryMode::kNaive}) {
    for (int64_t bn_size : {0, 2}) {
      SCOPED_TRACE(memory_mode_name(mode) + (bn_size > 0 ? " bc" : " plain"));
      const int64_t c0 = 4, layers = 3;
      DenseBlockOptions options(layers, c0, 3);
      options.bn_size(bn_size).memory(mode);
      torch::manual_seed(5);
      DenseBlock as_float(options), as_bf16(options);
      load_state_dict(*as_bf16, state_dict(*as_float));
      // (N, C0, H, W), values of bfloat16: the float32 run sees exactly what the bf16 run gets.
      const torch::Tensor bf16_input = (torch::randn({4, c0, 6, 6}) * 2 + 100).to(torch::kBFloat16);
      const torch::Tensor float_input = bf16_input.to(torch::kFloat32);
      as_float->forward(float_input);
      torch::Tensor actual;
      {
        const AutocastGuard autocast(torch::kCPU, torch::kBFloat16);
        actual = as_bf16->forward(bf16_input);
      }
      EXPECT_EQ(actual.scalar_type(), torch::kBFloat16) << "the block's buffer is 16-bit";
      EXPECT_TRUE(testing::tensors_identical("input channels of the output",
                                             actual.narrow(1, 0, c0), bf16_input));
      const StateDict want = state_dict(*as_float), got = state_dict(*as_bf16);
      for (int64_t l = 1; l <= (mode == MemoryMode::kNaive ? 1 : layers); ++l) {
        for (const std::string stat : {"running_mean", "running_var"}) {
          const std::string key = "denselayer" + std::to_string(l) + ".norm1." + stat;
          // float32 rounding: the variance is a difference of two rounded sums, so a few ulps
          // (1e-6); naive's LibTorch norm accumulates in float32, not double (1e-5).
          const double tolerance = mode == MemoryMode::kNaive ? 1e-5 : 1e-6;
          EXPECT_TRUE(testing::tensors_close(key, got.find(key)->narrow(0, 0, c0),
                                             want.find(key)->narrow(0, 0, c0), tolerance));
        }
      }
    }
  }
}

// The memory plan under amp (densenet info --amp, memory: auto, bench's refusal of a batch):
// activations counted at 2 bytes where the step keeps them 16-bit (every mode on the CPU and on
// CUDA), at 4 elsewhere; parameters and input float32.
TEST(AmpMemoryPlan, CountsTwoBytesWhereActivationsAre16Bit) {
  const ArchitecturePlan plan = plan_architecture(preset_options("densenet-bc-100"));
  for (MemoryMode mode : {MemoryMode::kNaive, MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    SCOPED_TRACE(memory_mode_name(mode));
    const StepMemory float32 = plan_step_memory(plan, mode, 0, 1);
    for (torch::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
      const StepMemory cpu = plan_step_memory(plan, mode, 0, 1, c10::DeviceType::CPU, dtype);
      const StepMemory cuda = plan_step_memory(plan, mode, 0, 1, c10::DeviceType::CUDA, dtype);
      EXPECT_EQ(2 * cpu.activations_per_sample, float32.activations_per_sample);
      EXPECT_EQ(2 * cuda.activations_per_sample, float32.activations_per_sample);
      EXPECT_EQ(cpu.fixed, float32.fixed);
      EXPECT_EQ(cpu.input_per_sample, float32.input_per_sample);
      EXPECT_EQ(predicted_step_bytes(plan, mode, 64, 1, 1, c10::DeviceType::CPU, dtype),
                plan_step_memory(plan, mode, 1, 2, c10::DeviceType::CPU, dtype).bytes(64));
    }
  }
}

// The dtype a stage computes in, for the devices and states a GPU-less machine cannot reach: on
// CUDA the stages follow autocast as on the CPU (their kernels, bn_relu.cu, take 16-bit data and
// accumulate in float32), and a device without stage kernels keeps float32.
TEST(StageComputeDtype, FollowsAutocastOnTheCpuAndCuda) {
  using detail::stage_compute_dtype;
  const auto cpu = c10::DeviceType::CPU, cuda = c10::DeviceType::CUDA;
  const auto f32 = torch::kFloat, f64 = torch::kDouble, bf16 = torch::kBFloat16, f16 = torch::kHalf;
  for (c10::DeviceType device : {cpu, cuda}) {
    SCOPED_TRACE(c10::DeviceTypeName(device));
    for (torch::ScalarType amp : {bf16, f16}) {
      EXPECT_EQ(stage_compute_dtype(device, f32, f32, amp), amp) << "float32 input under amp";
      EXPECT_EQ(stage_compute_dtype(device, amp, f32, amp), amp) << "16-bit input under amp";
      EXPECT_EQ(stage_compute_dtype(device, f64, f64, amp), f64) << "double parameters: no amp";
    }
    EXPECT_EQ(stage_compute_dtype(device, f32, f32, std::nullopt), f32);
    EXPECT_EQ(stage_compute_dtype(device, bf16, f32, std::nullopt), f32)
        << "a 16-bit input outside autocast is converted to the parameters' dtype";
    EXPECT_EQ(stage_compute_dtype(device, f64, f64, std::nullopt), f64);
    EXPECT_EQ(stage_compute_dtype(device, f32, f32, f32), f32) << "autocast to float32";
    EXPECT_EQ(stage_compute_dtype(device, bf16, std::nullopt, std::nullopt), bf16)
        << "no parameters: the input's dtype";
  }
  EXPECT_EQ(stage_compute_dtype(c10::DeviceType::MPS, f32, f32, bf16), f32)
      << "no stage kernels for the device: float32";
}

}  // namespace
}  // namespace densenet

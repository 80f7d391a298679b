// Mixed precision on a GPU: under bfloat16 and float16 autocast on CUDA, naive, efficient and
// minimal train within the tolerances of a float32 step, and the efficient and minimal stages
// compute in the 16-bit dtype (their BN-ReLU kernels, bn_relu.cu, reading and writing it). The
// same check as test_mixed_precision.cpp's on the CPU (mixed_precision_harness.h). Skipped,
// saying so, where torch::cuda::is_available() is false; bench/gpu/device_check.sh runs it on a
// GPU.
#include "densenet/model/dense_block.h"
#include "densenet/train/amp.h"
#include "model/mixed_precision_harness.h"

#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

namespace densenet {
namespace {

using testing::AmpModesCase;

/// float32 steps in float32 while it lives: cuDNN's convolutions and cuBLAS's GEMMs may
/// otherwise run in TF32 (10 significant bits, float16's), and the float32 reference would be
/// as rounded as the float16 step it measures.
class NoTf32 {
 public:
  NoTf32()
      : cudnn_(at::globalContext().allowTF32CuDNN()),
        cublas_(at::globalContext().allowTF32CuBLAS()) {
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
  ~NoTf32() {
    at::globalContext().setAllowTF32CuDNN(cudnn_);
    at::globalContext().setAllowTF32CuBLAS(cublas_);
  }
  NoTf32(const NoTf32&) = delete;
  NoTf32& operator=(const NoTf32&) = delete;

 private:
  bool cudnn_, cublas_;
};

class CudaAmpModesTest : public ::testing::TestWithParam<AmpModesCase> {};

TEST_P(CudaAmpModesTest, TrainingAgreesAcrossMemoryModes) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device (torch::cuda::is_available() is false); "
                    "bench/gpu/device_check.sh runs this on a GPU";
  }
  if (!train::autocast_supported(torch::kCUDA, GetParam().dtype)) {
    GTEST_SKIP() << "this GPU's autocast refuses " << GetParam().dtype;
  }
  const NoTf32 float32_is_float32;
  testing::check_amp_modes_agree(GetParam(), torch::kCUDA);
}

INSTANTIATE_TEST_SUITE_P(Families, CudaAmpModesTest,
                         ::testing::ValuesIn(testing::amp_modes_cases()),
                         [](const auto& info) { return info.param.name(); });

// A dense block in efficient or minimal mode under CUDA autocast keeps its buffer, and so its
// output, in the autocast dtype: half the bytes of float32.
TEST(CudaAmpStages, BlockBufferIsSixteenBit) {
  if (!torch::cuda::is_available()) {
    GTEST_SKIP() << "no CUDA device (torch::cuda::is_available() is false)";
  }
  for (MemoryMode mode : {MemoryMode::kEfficient, MemoryMode::kMinimal}) {
    for (torch::ScalarType dtype : {torch::kBFloat16, torch::kHalf}) {
      DenseBlockOptions options(3, 4, 3);
      options.bn_size(2).memory(mode);
      DenseBlock block(options);
      block->to(torch::kCUDA);
      const torch::Tensor input =
          torch::randn({4, 4, 6, 6}, torch::TensorOptions().device(torch::kCUDA))
              .requires_grad_(true);
      torch::Tensor output;
      {
        const train::AutocastGuard autocast(torch::kCUDA, dtype);
        output = block->forward(input);
      }
      EXPECT_EQ(output.scalar_type(), dtype) << memory_mode_name(mode);
      output.to(torch::kFloat).sum().backward();
      EXPECT_EQ(input.grad().scalar_type(), torch::kFloat) << memory_mode_name(mode);
    }
  }
}

}  // namespace
}  // namespace densenet

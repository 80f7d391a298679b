#pragma once

// One harness for the device implementations of the BN-ReLU kernels (the CUDA kernels of
// bn_relu.cu, and the same per-thread code walked on the CPU, test_cuda_grid.cpp): each case runs
// the implementation and compares it with the CPU path (bn_relu.h's functions on CPU tensors)
// and with the ATen composite in double, on strided channel prefixes, batch strides != C*H*W, C
// not a multiple of the block size, H*W = 1, in place and accumulating, for float, double, Half
// and BFloat16.

#include <gtest/gtest.h>
#include <torch/types.h>

#include <functional>
#include <string>
#include <tuple>
#include <vector>

namespace densenet::kernels::testing {

/// An implementation of bn_relu.h's device operations, on `device`.
struct BnReluOps {
  std::string name;
  torch::Device device = torch::kCPU;
  std::function<void(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out)>
      forward;
  std::function<std::tuple<torch::Tensor, torch::Tensor>(
      const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
      const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
      bool training, torch::Tensor& grad_x, bool accumulate)>
      backward;
  std::function<std::tuple<torch::Tensor, torch::Tensor>(
      torch::Tensor& grad_y, const torch::Tensor& y, const torch::Tensor& x,
      const torch::Tensor& mean, const torch::Tensor& invstd, const torch::Tensor& gamma,
      bool training, torch::Tensor& grad_x, bool accumulate)>
      backward_given_output;
};

/// A shape and dtype; check_against_cpu runs it in training and eval, writing, accumulating
/// and in place.
struct DeviceCase {
  int64_t n, c, h, w;
  int64_t extra_channels;       // x is the channel prefix of an (N, C + extra, H, W) buffer
  int64_t grad_extra_channels;  // grad_x is the prefix of another, wider or not
  torch::Dtype dtype;

  std::string name() const;
};

void PrintTo(const DeviceCase& c, std::ostream* os);

/// Odd shapes (C prime and not a multiple of the block size, H*W = 1, a single sample, more
/// values than one block takes), each as a plain tensor and as a prefix, every dtype.
std::vector<DeviceCase> odd_cases();
/// Block-buffer prefixes the size of DenseNet layers' inputs (bc-100, densenet121), in float,
/// BFloat16 and Half: the dtypes a GPU trains in.
std::vector<DeviceCase> realistic_cases();

/// Largest difference allowed relative to a tensor's scale (tensors_close) for results in this
/// dtype: what rounding to it leaves (the comparisons are with float or double results).
double tolerance(torch::Dtype dtype);

/// Runs the case's forward, backward and given-output backward through `ops` in training and
/// eval, writing, accumulating and in place, and compares them with the CPU path and the
/// double reference; failures name the variant and the tensor.
void check_against_cpu(const BnReluOps& ops, const DeviceCase& k);

}  // namespace densenet::kernels::testing

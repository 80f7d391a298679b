#pragma once

// Batch-norm + ReLU on channel slices of a dense block's feature buffer, the operations the
// efficient modes run once in forward and again (recomputed) in backward.
//
// Every `x` below is (N, C, H, W) whose H*W plane of each (n, c) is contiguous, while the
// batch stride may be larger than C*H*W: it is a channel prefix of a (N, C_total, H, W) block
// buffer, read in place. Outputs are contiguous (N, C, H, W) unless stated otherwise.
//
// Each operation has a vectorised, multi-threaded CPU kernel for float and double (and for
// bfloat16 and float16 data, the stages' buffers under amp: read into float32 and computed there,
// with float32 per-channel parameters (mean, scale, beta, invstd, gamma) and gradients, statistics
// and sums in double, results rounded to 16 bits once where stored), CUDA kernels (bn_relu.cu,
// bn_relu_cuda.h; in builds with nvcc) for float, double, Half and BFloat16, ATen's fused CUDA
// batch-norm kernels for CUDA tensors those do not take, and a reference composed of ATen
// operations, used for every other device and dtype and by the op tests as ground truth.

#include <torch/types.h>

#include <tuple>

namespace densenet::kernels {

/// Per-channel batch mean and biased variance over (N, H, W), accumulated and returned in
/// double (C,) tensors, as ATen's CPU batch norm keeps them before deriving invstd.
std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x);

/// out = max((x - mean[c]) * scale[c] + beta[c], 0) with scale = gamma * invstd; for float
/// the pre-activation is evaluated in double so that ReLU kinks sit where the exact result has
/// them. `out` is contiguous (N, C, H, W) and written completely; the rest are (C,).
void bn_relu_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out);

/// Backward of y = relu(gamma * (x - mean) * invstd + beta) given grad_y (contiguous), with
/// the ReLU mask recomputed from x (so the forward's output need not be kept):
///   dz = grad_y * [(x - mean) * scale + beta > 0],  scale = gamma * invstd
///   grad_beta = sum dz,  grad_gamma = sum dz * (x - mean) * invstd       (over N, H, W)
///   training: dx = scale * (dz - grad_beta / M - xhat * grad_gamma / M)  (batch statistics)
///   eval:     dx = scale * dz                                              (fixed statistics)
/// dx is added to grad_x when `accumulate`, else written to it. grad_x has x's layout rules
/// and may be the same tensor as grad_y (then dx overwrites it in place).
/// Returns (grad_gamma, grad_beta), each (C,).
std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward(
    const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
    const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
    bool training, torch::Tensor& grad_x, bool accumulate);

/// bn_relu_backward with the ReLU mask read from y = relu(bn(x)), the forward's output, instead
/// of recomputed from x: for devices where keeping y costs nothing extra (CUDA, where the
/// convolution's input gradient is a new buffer anyway). grad_y is scratch: it may be
/// overwritten with dz = grad_y * [y > 0] (the CUDA kernels only read it); grad_x may be grad_y.
/// Returns (grad_gamma, grad_beta).
std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward_given_output(
    torch::Tensor& grad_y, const torch::Tensor& y, const torch::Tensor& x,
    const torch::Tensor& mean, const torch::Tensor& invstd, const torch::Tensor& gamma,
    bool training, torch::Tensor& grad_x, bool accumulate);

namespace aten_cuda {
// The same operations from ATen's fused CUDA batch-norm kernels (CUDA tensors only).
std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x);
void bn_relu_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out);
std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward(
    const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
    const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
    bool training, torch::Tensor& grad_x, bool accumulate);
/// The norm's part of the backward given dz (the gradient at the pre-activation).
std::tuple<torch::Tensor, torch::Tensor> norm_backward(const torch::Tensor& dz,
                                                       const torch::Tensor& x,
                                                       const torch::Tensor& mean,
                                                       const torch::Tensor& invstd,
                                                       const torch::Tensor& gamma, bool training,
                                                       torch::Tensor& grad_x, bool accumulate);
}  // namespace aten_cuda

namespace reference {
// The same operations in ATen composites (any device, any floating dtype; 16-bit data with
// float32 statistics and parameters, computed in float32 or double).
std::tuple<torch::Tensor, torch::Tensor> channel_mean_var(const torch::Tensor& x);
void bn_relu_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                     const torch::Tensor& beta, torch::Tensor& out);
std::tuple<torch::Tensor, torch::Tensor> bn_relu_backward(
    const torch::Tensor& grad_y, const torch::Tensor& x, const torch::Tensor& mean,
    const torch::Tensor& invstd, const torch::Tensor& gamma, const torch::Tensor& beta,
    bool training, torch::Tensor& grad_x, bool accumulate);
std::tuple<torch::Tensor, torch::Tensor> norm_backward(const torch::Tensor& dz,
                                                       const torch::Tensor& x,
                                                       const torch::Tensor& mean,
                                                       const torch::Tensor& invstd,
                                                       const torch::Tensor& gamma, bool training,
                                                       torch::Tensor& grad_x, bool accumulate);
}  // namespace reference

}  // namespace densenet::kernels

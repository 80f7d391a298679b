#pragma once

// conv1x1(relu(bn(x))) on the CPU with the BN-ReLU formed one sample at a time in a per-thread
// buffer that the GEMMs read while it is still in cache. The unfused path writes the BN-ReLU
// of the whole layer input (a block-sized tensor) and reads it back for the convolution, in
// forward and again in backward; here that tensor never exists: fewer passes over memory and
// one block-sized buffer less at the backward peak.
//
// x is (N, C, H, W) with contiguous H*W planes and any batch stride (a channel prefix of a
// block buffer, read in place); weight (B, C, 1, 1) of x's dtype. CPU, float, double, bfloat16
// or float16 (norm_relu_conv1x1_supported); for 16-bit data the per-channel parameters (mean,
// scale, beta, invstd, gamma) and their gradients are float32, the BN-ReLU is computed in
// float32 and stored in 16 bits for the GEMMs (oneDNN's bfloat16 GEMM with float32 sums,
// kernels/gemm.h), dA and dW are float32, and grad_x is rounded to 16 bits once per write.
// Results agree with bn_relu_forward + convolution and with bn_relu_backward to rounding, with
// the same ReLU mask.

#include <torch/types.h>

#include <functional>
#include <vector>

namespace densenet::kernels {

/// Whether the kernels below take these tensors.
bool norm_relu_conv1x1_supported(const torch::Tensor& x, const torch::Tensor& weight);

/// out[n] = W relu((x[n] - mean) * scale + beta) per sample, W = weight as (B, C); mean, scale,
/// beta (C,) as for bn_relu_forward. out: contiguous (N, B, H, W), written completely.
void norm_relu_conv1x1_forward(const torch::Tensor& x, const torch::Tensor& mean,
                               const torch::Tensor& scale, const torch::Tensor& beta,
                               const torch::Tensor& weight, torch::Tensor& out);

/// Batch-statistics terms of norm backward passes not yet added to a gradient buffer: channel
/// c of the buffer is owed offset[c] + (x[:, c] - mean[c]) * slope[c]. Every norm in a dense
/// block normalises channel c with the same batch mean, so the terms that successive layers owe
/// a channel add up; the fused backward adds what is owed while it passes over the channels
/// anyway, and owes its own terms in turn, instead of a pass over the layer input of its own.
/// Whoever reads the buffer first settles it (apply_deferred_norm_terms).
struct DeferredNormTerms {
  explicit DeferredNormTerms(int64_t channels);
  int64_t channels() const { return static_cast<int64_t>(offset.size()); }
  std::vector<double> offset;  // (C,)
  std::vector<double> slope;   // (C,)
  std::vector<double> mean;    // (C,)
};

/// Adds what `deferred` holds for channels [first_channel, first_channel + C) to grad_x and
/// clears it; x and grad_x are those channels of the block buffer and of its gradient,
/// (N, C, H, W) with contiguous planes.
void apply_deferred_norm_terms(const torch::Tensor& x, torch::Tensor& grad_x,
                               DeferredNormTerms& deferred, int64_t first_channel);

struct NormReluConv1x1Grads {
  torch::Tensor weight;  // (B, C, 1, 1)
  torch::Tensor gamma;   // (C,)
  torch::Tensor beta;    // (C,)
};

/// Backward of out = conv1x1(relu(bn(x))) with bn as in bn_relu_backward (mean, invstd, gamma,
/// beta; batch statistics when `training`). `grad_output_of(n)` returns sample n's output
/// gradient, a contiguous (B, H, W) tensor; it is called once per sample, possibly from
/// several threads at once. dx is added to grad_x when `accumulate`, else written; grad_x has
/// x's layout rules and must not overlap x.
///
/// Per sample, in a per-thread buffer A (C, H*W): A = relu(bn(x[n])); dW += dY A^T; A = W^T dY;
/// then dz = A where the ReLU was active, the batch sums of dz and dz * (x - mean), and
/// grad_x[n] (+)= scale * dz. Training then adds the batch-statistics terms in a second pass
/// over x and grad_x, or, given `deferred`, owes them there (channels [0, C)): the terms it
/// already held for those channels are added in the first pass.
NormReluConv1x1Grads norm_relu_conv1x1_backward(
    const std::function<torch::Tensor(int64_t)>& grad_output_of, const torch::Tensor& x,
    const torch::Tensor& mean, const torch::Tensor& invstd, const torch::Tensor& gamma,
    const torch::Tensor& beta, const torch::Tensor& weight, bool training, torch::Tensor& grad_x,
    bool accumulate, DeferredNormTerms* deferred = nullptr);

}  // namespace densenet::kernels

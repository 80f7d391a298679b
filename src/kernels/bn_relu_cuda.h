#pragma once

// CUDA kernels of the BN-ReLU operations of bn_relu.h (bn_relu.cu), built where CMake finds nvcc
// and a LibTorch with CUDA (DENSENET_CUDA_KERNELS); bn_relu.cpp's device branch calls them for
// the tensors they take and ATen's CUDA batch-norm pieces (aten_cuda::) for the rest. Same
// arguments, results and conventions as the functions of bn_relu.h (bn_relu_cuda_grid.h says
// how each value is computed); one pass over the block buffer's channel prefix for the forward,
// two for a training backward (the sums, then dx), one for an eval backward. Float, double,
// Half and BFloat16 data, accumulated in float (double for double); the (C,) parameters are
// used in that accumulation type, and the affine gradients are returned in gamma's dtype.

#include <ATen/core/Tensor.h>

#include <initializer_list>
#include <tuple>

namespace densenet::kernels::cuda {

/// Whether the kernels take these tensors: all on one CUDA device; the 4-D ones of x's sizes
/// and one dtype (float, double, Half, BFloat16), each with contiguous H*W planes (any batch and
/// channel strides) and none overlapping itself; the 1-D ones floating with C values.
bool takes(std::initializer_list<const at::Tensor*> tensors);

/// bn_relu_forward of bn_relu.h: out = max((x - mean) * scale + beta, 0), one pass.
void bn_relu_forward(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& scale,
                     const at::Tensor& beta, at::Tensor& out);

/// bn_relu_backward of bn_relu.h (mask recomputed from x; grad_x may be grad_y).
std::tuple<at::Tensor, at::Tensor> bn_relu_backward(const at::Tensor& grad_y, const at::Tensor& x,
                                                    const at::Tensor& mean,
                                                    const at::Tensor& invstd,
                                                    const at::Tensor& gamma, const at::Tensor& beta,
                                                    bool training, at::Tensor& grad_x,
                                                    bool accumulate);

/// bn_relu_backward_given_output of bn_relu.h (mask y > 0). grad_y is only read (it is grad_x
/// itself when not accumulating, as the stage calls it: then it ends holding dx).
std::tuple<at::Tensor, at::Tensor> bn_relu_backward_given_output(
    const at::Tensor& grad_y, const at::Tensor& y, const at::Tensor& x, const at::Tensor& mean,
    const at::Tensor& invstd, const at::Tensor& gamma, bool training, at::Tensor& grad_x,
    bool accumulate);

}  // namespace densenet::kernels::cuda

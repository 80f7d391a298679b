#pragma once

// From tensors to the arguments of the CUDA BN-ReLU kernels (bn_relu_cuda_grid.h), on the host:
// the one construction that bn_relu.cu's launches and the CPU walk of the same grid
// (tests/kernels/test_cuda_grid.cpp) share, so that the test checks the arguments the kernels
// get.

#include "kernels/bn_relu_cuda_grid.h"

#include <ATen/core/Tensor.h>

namespace densenet::kernels::cuda_grid {

/// A 4-D tensor's (N, C, H, W) planes as the kernels index them (contiguous H*W planes).
template <typename T>
Planes<T> planes_of(const at::Tensor& t) {
  return {static_cast<T*>(t.data_ptr()), t.stride(0), t.stride(1)};
}

/// acc_t of the data's dtype: double for double, float for float, Half and BFloat16.
inline at::ScalarType accumulation_type(const at::Tensor& data) {
  return data.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

/// A (C,) parameter in the accumulation type of `data` (no copy when it is already).
inline at::Tensor in_accumulation_type(const at::Tensor& data, const at::Tensor& parameter) {
  return parameter.to(accumulation_type(data)).contiguous();
}

/// A backward's (C,) parameters in the accumulation type, owned here while BackwardArgs point
/// into them. beta is undefined for the output-mask backward (it reads the mask from y).
struct AccumulationParameters {
  at::Tensor mean, invstd, gamma, beta;
};

inline AccumulationParameters accumulation_parameters(const at::Tensor& x, const at::Tensor& mean,
                                                      const at::Tensor& invstd,
                                                      const at::Tensor& gamma,
                                                      const at::Tensor* beta) {
  return {in_accumulation_type(x, mean), in_accumulation_type(x, invstd),
          in_accumulation_type(x, gamma),
          beta != nullptr ? in_accumulation_type(x, *beta) : at::Tensor()};
}

/// The kernels' view of one backward: grad_y, x, y (nullptr: the mask is recomputed from x) and
/// grad_x of x's (N, C, H, W) sizes in T; `splits` blocks per channel; count = N*H*W.
template <typename T, typename A>
BackwardArgs<T, A> backward_args(const at::Tensor& grad_y, const at::Tensor* y, const at::Tensor& x,
                                 const at::Tensor& grad_x, const AccumulationParameters& p,
                                 int64_t splits, bool training, bool accumulate) {
  return {planes_of<const T>(grad_y),
          planes_of<const T>(x),
          y != nullptr ? planes_of<const T>(*y) : Planes<const T>{nullptr, 0, 0},
          planes_of<T>(grad_x),
          p.mean.data_ptr<A>(),
          p.invstd.data_ptr<A>(),
          p.gamma.data_ptr<A>(),
          p.beta.defined() ? p.beta.data_ptr<A>() : nullptr,
          x.size(1),
          splits,
          static_cast<double>(x.size(0) * x.size(2) * x.size(3)),
          training,
          accumulate};
}

}  // namespace densenet::kernels::cuda_grid

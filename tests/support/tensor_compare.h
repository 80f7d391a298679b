#pragma once

#include <gtest/gtest.h>
#include <torch/types.h>

#include <string>

namespace densenet::testing {

/// Passes when max |actual - expected| <= rtol * max(|expected|), i.e. the error is measured
/// relative to the tensor's scale (elementwise relative error is meaningless for entries that
/// are zero up to rounding). On failure names the tensor, the worst element, its index and both
/// values.
::testing::AssertionResult tensors_close(const std::string& name, const torch::Tensor& actual,
                                         const torch::Tensor& expected, double rtol);

/// Bit-for-bit equality of shape, dtype and values, with the first differing element named.
::testing::AssertionResult tensors_identical(const std::string& name, const torch::Tensor& actual,
                                             const torch::Tensor& expected);

}  // namespace densenet::testing

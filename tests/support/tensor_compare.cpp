#include "support/tensor_compare.h"

#include <sstream>

namespace densenet::testing {

namespace {

std::string index_string(int64_t flat, at::IntArrayRef sizes) {
  std::vector<int64_t> index(sizes.size());
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    index[d] = sizes[d] > 0 ? flat % sizes[d] : 0;
    flat = sizes[d] > 0 ? flat / sizes[d] : 0;
  }
  std::ostringstream out;
  out << "[";
  for (size_t d = 0; d < index.size(); ++d) out << (d ? "," : "") << index[d];
  out << "]";
  return out.str();
}

::testing::AssertionResult check_shape(const std::string& name, const torch::Tensor& actual,
                                       const torch::Tensor& expected) {
  if (!actual.defined() || !expected.defined()) {
    return ::testing::AssertionFailure()
           << "tensor '" << name << "': " << (actual.defined() ? "expected" : "actual")
           << " is undefined";
  }
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "tensor '" << name << "': shape " << actual.sizes()
                                         << " differs from expected " << expected.sizes();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

::testing::AssertionResult tensors_close(const std::string& name, const torch::Tensor& actual,
                                         const torch::Tensor& expected, double rtol) {
  if (auto shape = check_shape(name, actual, expected); !shape) return shape;
  if (expected.numel() == 0) return ::testing::AssertionSuccess();
  const torch::Tensor a = actual.detach().to(torch::kCPU, torch::kFloat64).flatten();
  const torch::Tensor e = expected.detach().to(torch::kCPU, torch::kFloat64).flatten();
  const torch::Tensor diff = (a - e).abs();
  const int64_t worst = diff.argmax().item<int64_t>();
  const double max_diff = diff[worst].item<double>();
  const double scale = e.abs().max().item<double>();
  const double allowed = rtol * scale;
  if (std::isfinite(max_diff) && max_diff <= allowed) return ::testing::AssertionSuccess();
  // The first element beyond tolerance, for the report.
  const int64_t first = (diff > allowed).logical_or(diff.isnan()).nonzero()[0][0].item<int64_t>();
  return ::testing::AssertionFailure()
         << "tensor '" << name << "' " << actual.sizes() << ": first element beyond tolerance at "
         << index_string(first, actual.sizes()) << " (actual " << a[first].item<double>()
         << ", expected " << e[first].item<double>() << "); worst at "
         << index_string(worst, actual.sizes()) << " |diff| " << max_diff << " > " << allowed
         << " (= " << rtol << " x scale " << scale << ")";
}

::testing::AssertionResult tensors_identical(const std::string& name, const torch::Tensor& actual,
                                             const torch::Tensor& expected) {
  if (auto shape = check_shape(name, actual, expected); !shape) return shape;
  if (actual.scalar_type() != expected.scalar_type()) {
    return ::testing::AssertionFailure()
           << "tensor '" << name << "': dtype " << actual.scalar_type() << " differs from expected "
           << expected.scalar_type();
  }
  if (torch::equal(actual.cpu(), expected.cpu())) return ::testing::AssertionSuccess();
  const torch::Tensor differs = actual.cpu().flatten().ne(expected.cpu().flatten());
  const int64_t first = differs.nonzero()[0][0].item<int64_t>();
  return ::testing::AssertionFailure()
         << "tensor '" << name << "': first difference at " << index_string(first, actual.sizes())
         << " (actual " << actual.cpu().flatten()[first].item<double>() << ", expected "
         << expected.cpu().flatten()[first].item<double>() << ")";
}

}  // namespace densenet::testing

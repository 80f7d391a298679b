// One harness for the BN-ReLU kernels (ggml test-backend-ops style): every case is named by
// its parameters, runs the CPU kernel and compares it with the ATen reference in double,
// on contiguous and strided inputs, odd sizes, both dtypes, train and eval, write and
// accumulate. The same cases check the BN-ReLU fused with a 1x1 convolution.
#include "kernels/bn_relu.h"
#include "kernels/norm_relu_conv1x1.h"
#include "kernels/sixteen_bit.h"
#include "util/parallel.h"

#include "densenet/util/threads.h"

#include "support/tensor_compare.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

namespace densenet::kernels {
namespace {

struct KernelCase {
  int64_t n, c, h, w;
  int64_t extra_channels;  // > 0: x is a channel prefix of a wider buffer (strided batch)
  torch::Dtype dtype;
  bool training;
  bool accumulate;

  std::string name() const {
    std::ostringstream out;
    out << "N" << n << "_C" << c << "_H" << h << "_W" << w << "_prefixOf" << c + extra_channels
        << "_" << (dtype == torch::kFloat ? "f32" : "f64") << (training ? "_train" : "_eval")
        << (accumulate ? "_accumulate" : "_write");
    return out.str();
  }
  // Float32 results carry a few float roundings per element (sums are in double):
  // 1e-5 of a tensor's scale. Float64: 1e-12, rounding only.
  double tolerance() const { return dtype == torch::kFloat ? 1e-5 : 1e-12; }
};

void PrintTo(const KernelCase& c, std::ostream* os) {
  *os << c.name();
}

std::vector<KernelCase> cases() {
  std::vector<KernelCase> all;
  const int64_t shapes[][4] = {{4, 48, 32, 32}, {1, 2, 1, 5}, {3, 7, 5, 3},
                               {2, 13, 9, 9},   {5, 3, 1, 1}, {8, 33, 4, 4}};
  for (const auto& s : shapes) {
    for (int64_t extra : {0, 5}) {
      for (torch::Dtype dtype : {torch::kFloat, torch::kDouble}) {
        for (bool training : {true, false}) {
          for (bool accumulate : {false, true}) {
            all.push_back({s[0], s[1], s[2], s[3], extra, dtype, training, accumulate});
          }
        }
      }
    }
  }
  return all;
}

class BnReluKernel : public ::testing::TestWithParam<KernelCase> {};

TEST_P(BnReluKernel, MatchesReferenceInDouble) {
  const KernelCase k = GetParam();
  torch::manual_seed(static_cast<uint64_t>(k.n * 1000 + k.c * 10 + k.h));
  const auto options = torch::TensorOptions().dtype(k.dtype);
  const torch::Tensor buffer =
      torch::randn({k.n, k.c + k.extra_channels, k.h, k.w}, options) * 2 + 0.3;
  const torch::Tensor x = buffer.narrow(1, 0, k.c);  // strided when extra_channels > 0
  const torch::Tensor gamma = torch::rand({k.c}, options) + 0.5;
  const torch::Tensor beta = torch::randn({k.c}, options) * 0.2;
  auto [batch_mean, batch_var] = channel_mean_var(x);
  auto [ref_mean, ref_var] = reference::channel_mean_var(x.to(torch::kDouble));
  EXPECT_TRUE(testing::tensors_close("mean", batch_mean, ref_mean, 1e-12));
  EXPECT_TRUE(testing::tensors_close("var", batch_var, ref_var, 1e-12));

  const torch::Tensor mean =
      k.training ? batch_mean.to(k.dtype) : torch::randn({k.c}, options) * 0.1;
  const torch::Tensor invstd = k.training ? (batch_var + 1e-5).rsqrt().to(k.dtype)
                                          : (torch::rand({k.c}, options) + 0.5).rsqrt();
  const torch::Tensor scale = gamma * invstd;
  auto d = [](const torch::Tensor& t) { return t.to(torch::kDouble); };

  torch::Tensor out = torch::empty({k.n, k.c, k.h, k.w}, options);
  bn_relu_forward(x, mean, scale, beta, out);
  torch::Tensor ref_out = torch::empty({k.n, k.c, k.h, k.w}, torch::kDouble);
  reference::bn_relu_forward(d(x), d(mean), d(scale), d(beta), ref_out);
  EXPECT_TRUE(testing::tensors_close("forward", out, ref_out, k.tolerance()));

  const torch::Tensor grad_y = torch::randn({k.n, k.c, k.h, k.w}, options);
  const torch::Tensor initial = torch::randn_like(buffer);
  torch::Tensor grad_buffer = initial.clone();
  torch::Tensor grad_x = grad_buffer.narrow(1, 0, k.c);
  auto [grad_gamma, grad_beta] =
      bn_relu_backward(grad_y, x, mean, invstd, gamma, beta, k.training, grad_x, k.accumulate);
  torch::Tensor ref_grad = d(initial).narrow(1, 0, k.c).clone();
  auto [ref_gamma, ref_beta] = reference::bn_relu_backward(
      d(grad_y), d(x), d(mean), d(invstd), d(gamma), d(beta), k.training, ref_grad, k.accumulate);
  EXPECT_TRUE(testing::tensors_close("grad_x", grad_x, ref_grad, k.tolerance()));
  EXPECT_TRUE(testing::tensors_close("grad_gamma", grad_gamma, ref_gamma, k.tolerance()));
  EXPECT_TRUE(testing::tensors_close("grad_beta", grad_beta, ref_beta, k.tolerance()));

  // The variant that reads the mask from the forward output (the CUDA path's, here through its
  // ATen composite): same gradients, grad_y overwritten with dz = grad_y * [y > 0].
  torch::Tensor masked = grad_y.clone();
  torch::Tensor given_buffer = initial.clone();
  torch::Tensor given_grad_x = given_buffer.narrow(1, 0, k.c);
  auto [given_gamma, given_beta] = bn_relu_backward_given_output(
      masked, out, x, mean, invstd, gamma, k.training, given_grad_x, k.accumulate);
  EXPECT_TRUE(testing::tensors_identical("dz", masked, grad_y * out.gt(0)));
  EXPECT_TRUE(testing::tensors_close("given-output grad_x", given_grad_x, ref_grad, k.tolerance()));
  EXPECT_TRUE(
      testing::tensors_close("given-output grad_gamma", given_gamma, ref_gamma, k.tolerance()));
  EXPECT_TRUE(
      testing::tensors_close("given-output grad_beta", given_beta, ref_beta, k.tolerance()));
  if (k.extra_channels > 0) {
    EXPECT_TRUE(testing::tensors_identical("channels past the prefix are untouched",
                                           grad_buffer.narrow(1, k.c, k.extra_channels),
                                           initial.narrow(1, k.c, k.extra_channels)));
  }
}

TEST(BnReluKernel, InPlaceBackwardOverwritesGradient) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({2, 4, 3, 3});
  const torch::Tensor gamma = torch::rand({4}) + 0.5, beta = torch::randn({4});
  auto [mean, var] = channel_mean_var(x);
  const torch::Tensor m = mean.to(torch::kFloat), invstd = (var + 1e-5).rsqrt().to(torch::kFloat);
  const torch::Tensor grad_y = torch::randn({2, 4, 3, 3});
  torch::Tensor separate = torch::empty_like(grad_y);
  bn_relu_backward(grad_y, x, m, invstd, gamma, beta, true, separate, false);
  torch::Tensor in_place = grad_y.clone();
  bn_relu_backward(in_place, x, m, invstd, gamma, beta, true, in_place, false);
  EXPECT_TRUE(testing::tensors_identical("in place", in_place, separate));
}

/// Reference of conv1x1(relu(bn(x))) and its backward in double: ATen composites.
struct FusedReference {
  torch::Tensor out, grad_x, grad_weight, grad_gamma, grad_beta;
};

FusedReference fused_reference(const torch::Tensor& x, const torch::Tensor& mean,
                               const torch::Tensor& invstd, const torch::Tensor& gamma,
                               const torch::Tensor& beta, const torch::Tensor& weight,
                               const torch::Tensor& grad_out, const torch::Tensor& initial_grad_x,
                               bool training, bool accumulate) {
  auto d = [](const torch::Tensor& t) { return t.to(torch::kDouble); };
  const torch::Tensor w = d(weight).flatten(1);  // (B, C)
  torch::Tensor activation = torch::empty(x.sizes(), torch::kDouble);
  reference::bn_relu_forward(d(x), d(mean), d(gamma) * d(invstd), d(beta), activation);
  FusedReference ref;
  ref.out = torch::einsum("bc,nchw->nbhw", {w, activation});
  ref.grad_weight = torch::einsum("nbhw,nchw->bc", {d(grad_out), activation}).view_as(weight);
  const torch::Tensor grad_activation = torch::einsum("bc,nbhw->nchw", {w, d(grad_out)});
  ref.grad_x = d(initial_grad_x);
  std::tie(ref.grad_gamma, ref.grad_beta) =
      reference::bn_relu_backward(grad_activation, d(x), d(mean), d(invstd), d(gamma), d(beta),
                                  training, ref.grad_x, accumulate);
  return ref;
}

/// Runs the fused kernels on x (a channel prefix of `buffer`) and compares with the reference.
void check_fused_conv1x1(const torch::Tensor& buffer, int64_t c, int64_t b, bool training,
                         bool accumulate, double tolerance) {
  const auto options = buffer.options();
  // The per-channel parameters: float32 for 16-bit data (the stages' under amp).
  const auto type = buffer.scalar_type();
  const auto params =
      options.dtype(type == torch::kBFloat16 || type == torch::kHalf ? torch::kFloat : type);
  const int64_t n = buffer.size(0), h = buffer.size(2), w = buffer.size(3);
  const torch::Tensor x = buffer.narrow(1, 0, c);
  const torch::Tensor gamma = torch::rand({c}, params) + 0.5;
  const torch::Tensor beta = torch::randn({c}, params) * 0.2;
  const torch::Tensor weight = torch::randn({b, c, 1, 1}, options);
  auto [batch_mean, batch_var] = channel_mean_var(x);
  const torch::Tensor mean = batch_mean.to(params.dtype());
  const torch::Tensor invstd = (batch_var + 1e-5).rsqrt().to(params.dtype());
  const torch::Tensor grad_out = torch::randn({n, b, h, w}, options);
  // grad_x inside a wider buffer too (dF's prefix), so its strides differ from a plain tensor's.
  const torch::Tensor initial = torch::randn({n, c + 3, h, w}, options);
  torch::Tensor grad_buffer = initial.clone();
  torch::Tensor grad_x = grad_buffer.narrow(1, 0, c);
  const FusedReference ref =
      fused_reference(x, mean, invstd, gamma, beta, weight, grad_out, grad_x, training, accumulate);

  ASSERT_TRUE(norm_relu_conv1x1_supported(x, weight));
  torch::Tensor out = torch::empty({n, b, h, w}, options);
  norm_relu_conv1x1_forward(x, mean, gamma * invstd, beta, weight, out);
  EXPECT_TRUE(testing::tensors_close("fused forward", out, ref.out, tolerance));

  const NormReluConv1x1Grads grads =
      norm_relu_conv1x1_backward([&](int64_t i) { return grad_out[i]; }, x, mean, invstd, gamma,
                                 beta, weight, training, grad_x, accumulate);
  EXPECT_TRUE(testing::tensors_close("fused grad_x", grad_x, ref.grad_x, tolerance));
  EXPECT_EQ(grads.weight.scalar_type(), params.dtype()) << "dW: the GEMMs' float32 sums";
  EXPECT_EQ(grads.gamma.scalar_type(), params.dtype());
  EXPECT_TRUE(
      testing::tensors_close("fused grad_weight", grads.weight, ref.grad_weight, tolerance));
  EXPECT_TRUE(testing::tensors_close("fused grad_gamma", grads.gamma, ref.grad_gamma, tolerance));
  EXPECT_TRUE(testing::tensors_close("fused grad_beta", grads.beta, ref.grad_beta, tolerance));
  EXPECT_TRUE(testing::tensors_identical("channels past the prefix are untouched",
                                         grad_buffer.narrow(1, c, 3), initial.narrow(1, c, 3)));
}

TEST_P(BnReluKernel, FusedWithConv1x1MatchesReference) {
  const KernelCase k = GetParam();
  torch::manual_seed(static_cast<uint64_t>(k.n * 1000 + k.c * 10 + k.h + 7));
  const torch::Tensor buffer =
      torch::randn({k.n, k.c + k.extra_channels, k.h, k.w}, torch::TensorOptions().dtype(k.dtype)) *
          2 +
      0.3;
  // GEMM sums add a few roundings per output: float at 1e-5 of the scale is kept.
  check_fused_conv1x1(buffer, k.c, /*b=*/5, k.training, k.accumulate, k.tolerance());
}

TEST(BnReluKernel, FusedWithConv1x1InColumnTiles) {
  // Planes larger than the per-thread buffer (4 MiB) run in tiles of columns, the last one
  // shorter: 8 channels of 400x400 floats are 5 MB.
  torch::manual_seed(5);
  for (torch::Dtype dtype : {torch::kFloat, torch::kDouble}) {
    const torch::Tensor buffer =
        torch::randn({2, 10, 400, 400}, torch::TensorOptions().dtype(dtype)) * 2 + 0.3;
    check_fused_conv1x1(buffer, /*c=*/8, /*b=*/3, /*training=*/true, /*accumulate=*/true,
                        dtype == torch::kFloat ? 1e-5 : 1e-12);
  }
}

TEST(BnReluKernel, FusedWithConv1x1DefersTheStatisticsTerms) {
  // With `deferred`, the backward adds what was owed to its channels in its own pass and owes
  // its batch-statistics terms instead of adding them; settling afterwards must give what the
  // plain call gives after the owed terms were added first.
  torch::manual_seed(9);
  for (torch::Dtype dtype : {torch::kFloat, torch::kDouble}) {
    const auto options = torch::TensorOptions().dtype(dtype);
    const int64_t n = 3, c = 7, b = 4, h = 5, w = 6, wide = c + 2;
    const torch::Tensor buffer = torch::randn({n, wide, h, w}, options) * 2 + 0.3;
    const torch::Tensor x = buffer.narrow(1, 0, c);
    const torch::Tensor gamma = torch::rand({c}, options) + 0.5, beta = torch::randn({c}, options);
    const torch::Tensor weight = torch::randn({b, c, 1, 1}, options);
    auto [batch_mean, batch_var] = channel_mean_var(buffer);
    const torch::Tensor mean = batch_mean.to(dtype).narrow(0, 0, c);
    const torch::Tensor invstd = (batch_var + 1e-5).rsqrt().to(dtype).narrow(0, 0, c);
    const torch::Tensor grad_out = torch::randn({n, b, h, w}, options);
    const torch::Tensor initial = torch::randn({n, wide, h, w}, options);
    auto grad_output_of = [&](int64_t i) { return grad_out[i]; };
    // Owed before the call: random terms on all `wide` channels, with the block's means.
    DeferredNormTerms owed(wide);
    for (int64_t ch = 0; ch < wide; ++ch) {
      owed.offset[ch] = torch::randn({}).item<double>();
      owed.slope[ch] = torch::randn({}).item<double>();
      owed.mean[ch] = batch_mean[ch].item<double>();
    }
    DeferredNormTerms owed_copy = owed;

    torch::Tensor expected = initial.clone();
    apply_deferred_norm_terms(buffer, expected, owed_copy, 0);
    torch::Tensor expected_x = expected.narrow(1, 0, c);
    const NormReluConv1x1Grads plain = norm_relu_conv1x1_backward(
        grad_output_of, x, mean, invstd, gamma, beta, weight, /*training=*/true, expected_x,
        /*accumulate=*/true);
    for (int64_t ch = 0; ch < wide; ++ch) EXPECT_EQ(owed_copy.offset[ch], 0.0) << "settled";

    torch::Tensor actual = initial.clone();
    torch::Tensor actual_x = actual.narrow(1, 0, c);
    const NormReluConv1x1Grads deferring = norm_relu_conv1x1_backward(
        grad_output_of, x, mean, invstd, gamma, beta, weight, /*training=*/true, actual_x,
        /*accumulate=*/true, &owed);
    EXPECT_NE(owed.slope[0], 0.0) << "owes its own terms";
    apply_deferred_norm_terms(buffer, actual, owed, 0);
    const double tolerance = dtype == torch::kFloat ? 1e-5 : 1e-12;
    EXPECT_TRUE(testing::tensors_close("deferred grad_x", actual, expected, tolerance));
    EXPECT_TRUE(testing::tensors_identical("grad_gamma", deferring.gamma, plain.gamma));
    EXPECT_TRUE(testing::tensors_identical("grad_weight", deferring.weight, plain.weight));
  }
}

TEST(BnReluKernel, FusedWithConv1x1TakesOnlyWhatItSupports) {
  const torch::Tensor x = torch::randn({2, 4, 3, 3});
  EXPECT_TRUE(norm_relu_conv1x1_supported(x, torch::randn({6, 4, 1, 1})));
  EXPECT_FALSE(norm_relu_conv1x1_supported(x, torch::randn({6, 4, 3, 3})));  // not 1x1
  EXPECT_FALSE(norm_relu_conv1x1_supported(x, torch::randn({6, 5, 1, 1})));  // channels
  EXPECT_FALSE(norm_relu_conv1x1_supported(x, torch::randn({6, 4, 1, 1}, torch::kDouble)));
  EXPECT_FALSE(norm_relu_conv1x1_supported(x.to(torch::kHalf), torch::randn({6, 4, 1, 1})));
  EXPECT_TRUE(norm_relu_conv1x1_supported(x.to(torch::kBFloat16),
                                          torch::randn({6, 4, 1, 1}, torch::kBFloat16)));
  EXPECT_TRUE(
      norm_relu_conv1x1_supported(x.to(torch::kHalf), torch::randn({6, 4, 1, 1}, torch::kHalf)));
  EXPECT_FALSE(norm_relu_conv1x1_supported(x.transpose(2, 3), torch::randn({6, 4, 1, 1})));
}

// 16-bit data (the stages' buffers under amp: bfloat16 or float16) with float32 per-channel
// parameters: the CPU kernels read it into float32, form sums in double, and round each stored
// result to 16 bits once. Against the reference in double on the same (exactly representable)
// values: statistics to double rounding; every stored result within one rounding to the dtype
// (eps/2 of the tensor's scale) plus float32 arithmetic, held to eps; the fused kernel's GEMMs
// read the BN-ReLU rounded to 16 bits (eps/2 per product, sums of both signs), held to 2 eps.
struct HalfCase {
  torch::Dtype dtype;
  bool training, accumulate;
  std::string name() const {
    return std::string(dtype == torch::kBFloat16 ? "bf16" : "f16") +
           (training ? "_train" : "_eval") + (accumulate ? "_accumulate" : "_write");
  }
  double eps() const {
    return dtype == torch::kBFloat16
               ? static_cast<double>(std::numeric_limits<c10::BFloat16>::epsilon())
               : static_cast<double>(std::numeric_limits<c10::Half>::epsilon());
  }
};

void PrintTo(const HalfCase& c, std::ostream* os) {
  *os << c.name();
}

std::vector<HalfCase> half_cases() {
  std::vector<HalfCase> all;
  for (torch::Dtype dtype : {torch::kBFloat16, torch::kHalf}) {
    for (bool training : {true, false}) {
      for (bool accumulate : {false, true}) all.push_back({dtype, training, accumulate});
    }
  }
  return all;
}

class HalfKernel : public ::testing::TestWithParam<HalfCase> {};

// The BN-ReLU kernels on a channel prefix of (3, 11 + 4, h, w) 16-bit data, against the
// reference in double.
void check_bn_relu_16_bit(const HalfCase& k, int64_t h, int64_t w) {
  torch::manual_seed(21);
  const int64_t n = 3, c = 11, extra = 4;
  const torch::Tensor buffer = (torch::randn({n, c + extra, h, w}) * 2 + 0.3).to(k.dtype);
  const torch::Tensor x = buffer.narrow(1, 0, c);  // a channel prefix, strided batch
  const torch::Tensor gamma = torch::rand({c}) + 0.5, beta = torch::randn({c}) * 0.2;
  auto [batch_mean, batch_var] = channel_mean_var(x);
  auto [ref_mean, ref_var] = reference::channel_mean_var(x.to(torch::kDouble));
  EXPECT_TRUE(testing::tensors_close("mean", batch_mean, ref_mean, 1e-12));
  EXPECT_TRUE(testing::tensors_close("var", batch_var, ref_var, 1e-12));
  const torch::Tensor mean = k.training ? batch_mean.to(torch::kFloat) : torch::randn({c}) * 0.1;
  const torch::Tensor invstd =
      k.training ? (batch_var + 1e-5).rsqrt().to(torch::kFloat) : (torch::rand({c}) + 0.5).rsqrt();
  auto d = [](const torch::Tensor& t) { return t.to(torch::kDouble); };

  torch::Tensor out = torch::empty({n, c, h, w}, k.dtype);
  bn_relu_forward(x, mean, gamma * invstd, beta, out);
  torch::Tensor ref_out = torch::empty({n, c, h, w}, torch::kDouble);
  reference::bn_relu_forward(d(x), d(mean), d(gamma * invstd), d(beta), ref_out);
  EXPECT_TRUE(testing::tensors_close("forward", out, ref_out, k.eps()));

  const torch::Tensor grad_y = torch::randn({n, c, h, w}).to(k.dtype);
  const torch::Tensor initial = torch::randn_like(buffer);
  torch::Tensor grad_buffer = initial.clone();
  torch::Tensor grad_x = grad_buffer.narrow(1, 0, c);
  auto [grad_gamma, grad_beta] =
      bn_relu_backward(grad_y, x, mean, invstd, gamma, beta, k.training, grad_x, k.accumulate);
  torch::Tensor ref_grad = d(initial).narrow(1, 0, c).clone();
  auto [ref_gamma, ref_beta] = reference::bn_relu_backward(
      d(grad_y), d(x), d(mean), d(invstd), d(gamma), d(beta), k.training, ref_grad, k.accumulate);
  EXPECT_EQ(grad_gamma.scalar_type(), torch::kFloat);
  EXPECT_TRUE(testing::tensors_close("grad_x", grad_x, ref_grad, k.eps()));
  EXPECT_TRUE(testing::tensors_close("grad_gamma", grad_gamma, ref_gamma, 1e-5));
  EXPECT_TRUE(testing::tensors_close("grad_beta", grad_beta, ref_beta, 1e-5));
  EXPECT_TRUE(testing::tensors_identical("channels past the prefix are untouched",
                                         grad_buffer.narrow(1, c, extra),
                                         initial.narrow(1, c, extra)));
}

TEST_P(HalfKernel, BnReluReadsAndWrites16BitData) {
  check_bn_relu_16_bit(GetParam(), 7, 5);
}

// Planes of more than one of the float32 blocks that 16-bit data is converted through
// (kernels/sixteen_bit.h: 2048 values), and not a multiple of it.
TEST_P(HalfKernel, BnReluOnPlanesOfSeveralBlocks) {
  check_bn_relu_16_bit(GetParam(), 47, 93);
}

TEST_P(HalfKernel, FusedWithConv1x1FeedsTheGemmsIn16Bit) {
  const HalfCase k = GetParam();
  torch::manual_seed(23);
  const torch::Tensor buffer = (torch::randn({4, 29, 6, 6}) * 2 + 0.3).to(k.dtype);
  check_fused_conv1x1(buffer, /*c=*/24, /*b=*/8, k.training, k.accumulate, 2 * k.eps());
  const torch::Tensor large = (torch::randn({2, 13, 47, 93}) * 2 + 0.3).to(k.dtype);
  check_fused_conv1x1(large, /*c=*/10, /*b=*/4, k.training, k.accumulate, 2 * k.eps());
}

// The block conversions are c10's own, value for value: bfloat16's round to nearest even
// (ties, carries into the exponent, overflow to infinity), quiet NaNs, subnormals and zeros;
// float16's the same through c10::Half.
TEST(SixteenBit, ConversionsAreC10s) {
  std::vector<float> values = {0.0f,        -0.0f,   1.0f,     -1.0f,    1.00390625f,
                               1.01171875f, 3.4e38f, -3.4e38f, 65504.0f, 65520.0f,
                               1e-40f,      -1e-45f, 6e-8f,    0.1f};
  for (float special :
       {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
        std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::signaling_NaN()}) {
    values.push_back(special);
  }
  const torch::Tensor random = torch::randn({5000}) * torch::exp(torch::randn({5000}) * 8);
  for (int64_t i = 0; i < random.numel(); ++i) values.push_back(random[i].item<float>());
  const auto n = static_cast<int64_t>(values.size());
  std::vector<c10::BFloat16> bf16(values.size());
  std::vector<c10::Half> f16(values.size());
  detail::narrow(values.data(), bf16.data(), n);
  detail::narrow(values.data(), f16.data(), n);
  std::vector<float> back_bf16(values.size()), back_f16(values.size());
  detail::widen(bf16.data(), back_bf16.data(), n);
  detail::widen(f16.data(), back_f16.data(), n);
  for (size_t i = 0; i < values.size(); ++i) {
    const c10::BFloat16 want_bf16(values[i]);
    const c10::Half want_f16(values[i]);
    ASSERT_EQ(bf16[i].x, want_bf16.x) << "bfloat16 of " << values[i];
    ASSERT_EQ(f16[i].x, want_f16.x) << "float16 of " << values[i];
    const float want_back_bf16 = static_cast<float>(want_bf16);
    const float want_back_f16 = static_cast<float>(want_f16);
    ASSERT_EQ(std::memcmp(&back_bf16[i], &want_back_bf16, sizeof(float)), 0) << values[i];
    ASSERT_EQ(std::memcmp(&back_f16[i], &want_back_f16, sizeof(float)), 0) << values[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, HalfKernel, ::testing::ValuesIn(half_cases()),
                         [](const auto& info) { return info.param.name(); });

TEST(ParallelLoops, RunOnTheThreadsAsked) {
  // The library's kernels parallelise with at::parallel_for, a header template that runs
  // serially unless its caller was compiled with OpenMP; this caught a build where every
  // kernel ran on one thread.
  const int previous = at::get_num_threads();
  set_num_threads(2);
  EXPECT_EQ(densenet::detail::threads_in_parallel_loop(64), 2);
  set_num_threads(1);
  EXPECT_EQ(densenet::detail::threads_in_parallel_loop(64), 1);
  set_num_threads(previous);
}

INSTANTIATE_TEST_SUITE_P(Cases, BnReluKernel, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name(); });

// The float kernels test the ReLU mask with a per-channel interval of floats; it must be
// exactly the sign of the pre-activation evaluated in double, also within an ulp of the kink
// and for negative, zero and extreme scales.
TEST(BnReluKernel, FloatMaskIsTheExactSignAtTheKink) {
  torch::manual_seed(11);
  const int64_t channels = 6, count = 2000;
  const torch::Tensor mean = torch::tensor({0.3f, -1.7f, 0.0f, 5.0f, 1e-3f, 2.0f});
  const torch::Tensor scale = torch::tensor({1.3f, -0.7f, 0.0f, 3e4f, -2e-5f, 0.9f});
  const torch::Tensor beta = torch::tensor({-0.2f, 0.4f, 0.5f, 1e-3f, 0.0f, -1e30f});
  // Values clustered within a few ulps of each channel's kink, plus random ones.
  torch::Tensor x = torch::empty({1, channels, 1, count});
  for (int64_t c = 0; c < channels; ++c) {
    const float m = mean[c].item<float>(), a = scale[c].item<float>(), b = beta[c].item<float>();
    float kink = a != 0.0f ? static_cast<float>(m - static_cast<double>(b) / a) : 0.0f;
    if (!std::isfinite(kink)) kink = 0.0f;
    for (int64_t i = 0; i < count; ++i) {
      float v = kink;
      for (int64_t step = 0; step < i % 40; ++step) {
        v = std::nextafter(v, i % 2 ? 1e38f : -1e38f);
      }
      x[0][c][0][i] = i < count / 2 ? v : torch::randn({}).item<float>() * 10;
    }
  }
  const torch::Tensor invstd = torch::ones({channels});
  torch::Tensor grad_x = torch::empty_like(x);
  // Eval mode: dx = scale * dz, so dx != 0 exactly where the mask is on (gamma = scale).
  bn_relu_backward(torch::ones_like(x), x, mean, invstd, scale, beta, /*training=*/false, grad_x,
                   /*accumulate=*/false);
  torch::Tensor out = torch::empty_like(x);
  bn_relu_forward(x, mean, scale, beta, out);
  int64_t checked = 0;
  for (int64_t c = 0; c < channels; ++c) {
    const double m = mean[c].item<float>(), a = scale[c].item<float>(), b = beta[c].item<float>();
    for (int64_t i = 0; i < count; ++i) {
      const double v = x[0][c][0][i].item<float>();
      const bool active = (v - m) * a + b > 0.0;
      // With scale 0 the gradient is 0 whatever the mask; the forward output (beta where
      // active) shows the mask instead.
      const bool kernel = a != 0.0 ? grad_x[0][c][0][i].item<float>() != 0.0f
                                   : out[0][c][0][i].item<float>() > 0.0f;
      ASSERT_EQ(kernel, active) << "channel " << c << " x " << v;
      ASSERT_TRUE(active || out[0][c][0][i].item<float>() == 0.0f);
      ++checked;
    }
  }
  EXPECT_EQ(checked, channels * count);
}

}  // namespace
}  // namespace densenet::kernels

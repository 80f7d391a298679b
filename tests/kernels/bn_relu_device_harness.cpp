#include "kernels/bn_relu_device_harness.h"

#include "kernels/bn_relu.h"
#include "support/tensor_compare.h"

#include <ATen/ATen.h>

#include <sstream>

namespace densenet::kernels::testing {

using densenet::testing::tensors_close;
using densenet::testing::tensors_identical;

namespace {

bool is_16_bit(torch::Dtype dtype) {
  return dtype == torch::kHalf || dtype == torch::kBFloat16;
}

/// The (C,) parameters' dtype: the accumulation type, as the stage keeps them under autocast.
torch::Dtype parameter_dtype(torch::Dtype dtype) {
  return dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
}

const char* dtype_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat:
      return "f32";
    case torch::kDouble:
      return "f64";
    case torch::kHalf:
      return "f16";
    case torch::kBFloat16:
      return "bf16";
    default:
      return "other";
  }
}

struct Variant {
  bool training;
  bool accumulate;
  bool in_place;  // grad_x is grad_y
  std::string name() const {
    return std::string(training ? "train" : "eval") + (in_place     ? "_in_place"
                                                       : accumulate ? "_accumulate"
                                                                    : "_write");
  }
};

/// One case's inputs, on the CPU.
struct Inputs {
  torch::Tensor buffer;        // (N, C + extra, H, W); x is its channel prefix
  torch::Tensor mean, invstd;  // (C,) batch statistics (training) or running ones
  torch::Tensor gamma, beta, scale;
  torch::Tensor grad_y;        // (N, C, H, W)
  torch::Tensor grad_initial;  // (N, C + grad extra, H, W); grad_x is its prefix

  /// The same values in another dtype (parameters in that dtype's accumulation type).
  Inputs to(torch::Dtype dtype) const {
    const torch::Dtype p = parameter_dtype(dtype);
    return {buffer.to(dtype), mean.to(p),  invstd.to(p),     gamma.to(p),
            beta.to(p),       scale.to(p), grad_y.to(dtype), grad_initial.to(dtype)};
  }
};

/// Random inputs, with no pre-activation within 1e-4 of its terms' size of the ReLU's kink:
/// the implementations round the scale and the pre-activation differently (in float, in
/// double), which may flip the mask of values at the kink, and one flipped mask is a
/// difference of a whole gradient value.
Inputs make_inputs(const DeviceCase& k, bool training) {
  torch::manual_seed(static_cast<uint64_t>(k.n * 7919 + k.c * 31 + k.h * 7 + k.w + training));
  const auto d = torch::TensorOptions().dtype(torch::kDouble);
  Inputs in;
  torch::Tensor buffer = torch::randn({k.n, k.c + k.extra_channels, k.h, k.w}, d) * 2 + 0.3;
  buffer = buffer.to(k.dtype).to(torch::kDouble);  // values the dtype holds
  torch::Tensor x = buffer.narrow(1, 0, k.c);
  torch::Tensor mean, invstd;
  if (training) {
    auto [batch_mean, batch_var] = reference::channel_mean_var(x);
    mean = batch_mean;
    invstd = (batch_var + 1e-5).rsqrt();
  } else {
    mean = torch::randn({k.c}, d) * 0.1;
    invstd = (torch::rand({k.c}, d) + 0.5).rsqrt();
  }
  const torch::Dtype p = parameter_dtype(k.dtype);
  in.mean = mean.to(p);
  in.invstd = invstd.to(p);
  in.gamma = (torch::rand({k.c}, d) + 0.5).to(p);
  in.beta = (torch::randn({k.c}, d) * 0.2).to(p);
  in.scale = in.gamma * in.invstd;  // as the stage forms it
  auto channel = [](const torch::Tensor& t) { return t.to(torch::kDouble).view({1, -1, 1, 1}); };
  const torch::Tensor centred = (x - channel(in.mean)) * channel(in.scale);
  const torch::Tensor pre = centred + channel(in.beta);
  const torch::Tensor near = pre.abs() < 1e-4 * (centred.abs() + channel(in.beta).abs());
  // scale > 0: moving x by 0.25 in pre's direction moves pre away from 0 by 0.25 * scale.
  x.add_(((pre >= 0).to(torch::kDouble) * 0.5 - 0.25) * near);
  in.buffer = buffer.to(k.dtype);
  in.grad_y = torch::randn({k.n, k.c, k.h, k.w}, d).to(k.dtype);
  in.grad_initial = torch::randn({k.n, k.c + k.grad_extra_channels, k.h, k.w}, d).to(k.dtype);
  return in;
}

struct Results {
  torch::Tensor out;                                  // forward
  torch::Tensor grad, grad_gamma, grad_beta;          // backward: grad_x's buffer (grad_y in place)
  torch::Tensor given_grad, given_gamma, given_beta;  // with the mask from `out`
};

/// Runs everything through `ops` on copies of the inputs on its device; results on the CPU.
Results run(const BnReluOps& ops, const Inputs& in, const DeviceCase& k, const Variant& v) {
  auto on = [&](const torch::Tensor& t) {
    return t.to(ops.device, t.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
  };
  const torch::Tensor buffer = on(in.buffer);
  const torch::Tensor x = buffer.narrow(1, 0, k.c);  // strided when there are extra channels
  const torch::Tensor mean = on(in.mean), invstd = on(in.invstd), gamma = on(in.gamma);
  const torch::Tensor beta = on(in.beta), scale = on(in.scale);
  Results r;
  torch::Tensor out = torch::empty({k.n, k.c, k.h, k.w}, buffer.options());
  ops.forward(x, mean, scale, beta, out);
  r.out = out.cpu();
  auto backward = [&](bool given_output) {
    torch::Tensor grad_y = on(in.grad_y);
    torch::Tensor grad_buffer = v.in_place ? grad_y : on(in.grad_initial);
    torch::Tensor grad_x = v.in_place ? grad_y : grad_buffer.narrow(1, 0, k.c);
    auto [grad_gamma, grad_beta] =
        given_output
            ? ops.backward_given_output(grad_y, out, x, mean, invstd, gamma, v.training, grad_x,
                                        v.accumulate)
            : ops.backward(grad_y, x, mean, invstd, gamma, beta, v.training, grad_x, v.accumulate);
    return std::make_tuple(grad_buffer.cpu(), grad_gamma.cpu(), grad_beta.cpu());
  };
  std::tie(r.grad, r.grad_gamma, r.grad_beta) = backward(false);
  std::tie(r.given_grad, r.given_gamma, r.given_beta) = backward(true);
  return r;
}

BnReluOps cpu_path() {
  BnReluOps ops;
  ops.name = "CPU path";
  ops.forward = bn_relu_forward;
  ops.backward = bn_relu_backward;
  ops.backward_given_output = bn_relu_backward_given_output;
  return ops;
}

BnReluOps double_reference() {
  BnReluOps ops;
  ops.name = "ATen composite in double";
  ops.forward = reference::bn_relu_forward;
  ops.backward = reference::bn_relu_backward;
  ops.backward_given_output = [](torch::Tensor& grad_y, const torch::Tensor& y,
                                 const torch::Tensor& x, const torch::Tensor& mean,
                                 const torch::Tensor& invstd, const torch::Tensor& gamma,
                                 bool training, torch::Tensor& grad_x, bool accumulate) {
    at::threshold_backward_out(grad_y, grad_y, y, 0);
    return reference::norm_backward(grad_y, x, mean, invstd, gamma, training, grad_x, accumulate);
  };
  return ops;
}

/// Compares every result, each within `tolerance` (exactly where `exact_*`).
void expect_results(const std::string& against, const Results& actual, const Results& expected,
                    double tolerance, double affine_tolerance, bool exact_forward,
                    bool exact_grad) {
  auto same = [&](const std::string& what, const torch::Tensor& a, const torch::Tensor& e,
                  bool exact, double tol) {
    const std::string name = what + " vs " + against;
    const torch::Tensor expected_in_dtype = e.to(a.scalar_type());
    if (exact) {
      EXPECT_TRUE(tensors_identical(name, a, expected_in_dtype));
    } else {
      EXPECT_TRUE(tensors_close(name, a, e, tol));
    }
  };
  same("forward", actual.out, expected.out, exact_forward, tolerance);
  same("grad_x", actual.grad, expected.grad, exact_grad, tolerance);
  same("grad_gamma", actual.grad_gamma, expected.grad_gamma, false, affine_tolerance);
  same("grad_beta", actual.grad_beta, expected.grad_beta, false, affine_tolerance);
  same("given-output grad_x", actual.given_grad, expected.given_grad, false, tolerance);
  same("given-output grad_gamma", actual.given_gamma, expected.given_gamma, false,
       affine_tolerance);
  same("given-output grad_beta", actual.given_beta, expected.given_beta, false, affine_tolerance);
}

}  // namespace

std::string DeviceCase::name() const {
  std::ostringstream out;
  out << "N" << n << "_C" << c << "_H" << h << "_W" << w << "_prefixOf" << c + extra_channels
      << "_gradPrefixOf" << c + grad_extra_channels << "_" << dtype_name(dtype);
  return out.str();
}

void PrintTo(const DeviceCase& c, std::ostream* os) {
  *os << c.name();
}

std::vector<DeviceCase> odd_cases() {
  std::vector<DeviceCase> all;
  // C = 257: past one block of threads; 4x3x64x64: several blocks per channel.
  const int64_t shapes[][4] = {{1, 2, 1, 5},  {3, 7, 5, 3},   {2, 13, 9, 9},   {5, 3, 1, 1},
                               {8, 33, 4, 4}, {4, 3, 64, 64}, {300, 257, 1, 1}};
  for (const auto& s : shapes) {
    for (int64_t extra : {0, 5}) {
      for (torch::Dtype dtype : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16}) {
        all.push_back({s[0], s[1], s[2], s[3], extra, extra == 0 ? 0 : 3, dtype});
      }
    }
  }
  return all;
}

std::vector<DeviceCase> realistic_cases() {
  std::vector<DeviceCase> all;
  // (N, C_l, H, W) prefix of (N, C_L, H, W): bc-100's block 3 at 8x8; densenet121's blocks 1,
  // 3 and 4 (batches of 8 and 32, to keep the CPU references short).
  const int64_t shapes[][5] = {
      {64, 168, 8, 8, 48}, {8, 128, 56, 56, 64}, {32, 256, 14, 14, 128}, {32, 1000, 7, 7, 24}};
  for (const auto& s : shapes) {
    for (torch::Dtype dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
      all.push_back({s[0], s[1], s[2], s[3], s[4], s[4], dtype});
    }
  }
  return all;
}

double tolerance(torch::Dtype dtype) {
  switch (dtype) {
    // A few float roundings per element (sums are in double): 1e-5 of a tensor's scale.
    case torch::kFloat:
      return 1e-5;
    // Rounding only.
    case torch::kDouble:
      return 1e-12;
    // The final rounding to the dtype: half an ulp, 2^-11 (Half) or 2^-8 (BFloat16) of a value,
    // at most the tensor's scale; twice that.
    case torch::kHalf:
      return 1e-3;
    case torch::kBFloat16:
      return 8e-3;
    default:
      return 0;
  }
}

void check_against_cpu(const BnReluOps& ops, const DeviceCase& k) {
  for (bool training : {true, false}) {
    const Inputs in = make_inputs(k, training);
    for (const Variant v : {Variant{training, false, false}, Variant{training, true, false},
                            Variant{training, false, true}}) {
      SCOPED_TRACE(ops.name + " " + k.name() + " " + v.name());
      const Results actual = run(ops, in, k, v);
      const double tol = tolerance(k.dtype);
      const double affine_tol = tolerance(parameter_dtype(k.dtype));  // sums in float or double
      if (!is_16_bit(k.dtype)) {
        // The CPU kernels: forward bit for bit; dx too in eval (no sums in it).
        expect_results(cpu_path().name, actual, run(cpu_path(), in, k, v), tol, affine_tol,
                       /*exact_forward=*/true, /*exact_grad=*/!training);
      } else {
        // The CPU kernel for float on the same values: what the device computes in float,
        // before it rounds to the dtype; then the CPU path in the dtype itself.
        expect_results("CPU float kernel", actual, run(cpu_path(), in.to(torch::kFloat), k, v), tol,
                       affine_tol, /*exact_forward=*/true, /*exact_grad=*/!training);
        expect_results(cpu_path().name, actual, run(cpu_path(), in, k, v), tol, tol, false, false);
      }
      expect_results(double_reference().name, actual,
                     run(double_reference(), in.to(torch::kDouble), k, v), tol, affine_tol, false,
                     false);
      if (!v.in_place && k.grad_extra_channels > 0) {
        EXPECT_TRUE(tensors_identical("channels past the prefix are untouched",
                                      actual.grad.narrow(1, k.c, k.grad_extra_channels),
                                      in.grad_initial.narrow(1, k.c, k.grad_extra_channels)));
      }
    }
  }
}

}  // namespace densenet::kernels::testing

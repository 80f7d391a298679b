#include "densenet/train/loss_scaler.h"

#include "densenet/train/optimizer.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace densenet::train {
namespace {

const pth::Value& entry(const pth::Value& state, const char* name) {
  const pth::Value* value = state.find(name);
  TORCH_CHECK(value != nullptr, "loss scaler state: no '", name,
              "' (a checkpoint of a run without loss scaling?)");
  return *value;
}

}  // namespace

LossScaler::LossScaler(const LossScalerOptions& options, const torch::Device& device)
    : options_(options) {
  TORCH_CHECK(std::isfinite(options.init_scale) && options.init_scale > 0 &&
                  options.init_scale <= std::numeric_limits<float>::max(),
              "loss scaler: init_scale must be a positive float32 number, got ",
              options.init_scale);
  TORCH_CHECK(options.growth_factor > 1, "loss scaler: growth_factor must be > 1, got ",
              options.growth_factor);
  TORCH_CHECK(options.backoff_factor > 0 && options.backoff_factor < 1,
              "loss scaler: backoff_factor must be in (0, 1), got ", options.backoff_factor);
  TORCH_CHECK(options.growth_interval >= 1 &&
                  options.growth_interval <= std::numeric_limits<int32_t>::max(),
              "loss scaler: growth_interval must be in [1, 2^31), got ", options.growth_interval);
  scale_ = torch::full({1}, options.init_scale, torch::dtype(torch::kFloat32).device(device));
  growth_tracker_ = torch::zeros({1}, torch::dtype(torch::kInt32).device(device));
}

torch::Tensor LossScaler::scale(const torch::Tensor& loss) const {
  return loss * scale_.to(loss.device(), /*non_blocking=*/true);
}

bool LossScaler::unscale(const std::vector<torch::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& parameter : parameters) {
    const torch::Tensor& grad = parameter.grad();
    if (!grad.defined()) continue;
    // GradScaler refuses float16 gradients too: unscaled, they would underflow where the
    // scale meant to keep them.
    TORCH_CHECK(grad.scalar_type() == torch::kFloat32 || grad.scalar_type() == torch::kFloat64,
                "loss scaling needs float32 parameters (the master weights), got a ",
                grad.scalar_type(), " gradient; keep the model in float32 under amp");
    grads.push_back(grad);
  }
  // 1/S formed in double and rounded once to float32, as GradScaler.unscale_ does.
  const double scale = scale_value();
  const float inv_scale = static_cast<float>(1.0 / scale);
  if (scale_.is_cuda()) {
    torch::Tensor found_inf = torch::zeros({1}, scale_.options());
    const torch::Tensor inv = torch::full({1}, inv_scale, scale_.options());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv);
    return found_inf.item<float>() != 0;
  }
  // The CPU equivalent of the CUDA kernel (LibTorch 1.13 has no CPU one): the check reads the
  // scaled values, before the multiplication, since with S < 1 a finite scaled gradient can
  // overflow when unscaled; each value is multiplied in float32 (a no-op when 1/S is 1).
  bool found_inf = false;
  for (auto& grad : grads) {
    if (!found_inf) found_inf = !torch::isfinite(grad).all().item<bool>();
    if (inv_scale != 1.0f) grad.mul_(inv_scale);
  }
  return found_inf;
}

void LossScaler::update(bool found_inf) {
  if (scale_.is_cuda()) {
    const torch::Tensor found = torch::full({1}, found_inf ? 1.0f : 0.0f, scale_.options());
    at::_amp_update_scale_(scale_, growth_tracker_, found, options_.growth_factor,
                           options_.backoff_factor, options_.growth_interval);
    return;
  }
  // torch._amp_update_scale_'s arithmetic: float32 scale times a double factor, rounded to
  // float32; growth that would overflow float32 keeps the scale (and still resets the count).
  const float scale = scale_.item<float>();
  const int32_t tracker = growth_tracker_.item<int32_t>();
  float new_scale = scale;
  int32_t new_tracker = 0;
  if (found_inf) {
    new_scale = static_cast<float>(static_cast<double>(scale) * options_.backoff_factor);
  } else if (tracker + 1 == options_.growth_interval) {
    const float grown = static_cast<float>(static_cast<double>(scale) * options_.growth_factor);
    if (std::isfinite(grown)) new_scale = grown;
  } else {
    new_tracker = tracker + 1;
  }
  scale_.fill_(new_scale);
  growth_tracker_.fill_(new_tracker);
}

double LossScaler::scale_value() const {
  return static_cast<double>(scale_.item<float>());
}

int64_t LossScaler::growth_tracker() const {
  return growth_tracker_.item<int32_t>();
}

pth::Value LossScaler::state_dict() const {
  pth::Value state = pth::Value::dict();
  const auto put = [&](const char* name, pth::Value value) {
    state.set_item(pth::Value::string(name), std::move(value));
  };
  put("scale", float_value(scale_value()));  // a float32 value: exact in float64
  put("growth_factor", float_value(options_.growth_factor));
  put("backoff_factor", float_value(options_.backoff_factor));
  put("growth_interval", pth::Value::integer(options_.growth_interval));
  put("_growth_tracker", pth::Value::integer(growth_tracker()));
  return state;
}

void LossScaler::load_state_dict(const pth::Value& state) {
  const double scale = float_of(entry(state, "scale"));
  const int64_t tracker = entry(state, "_growth_tracker").as_int();
  TORCH_CHECK(
      std::isfinite(scale) && scale > 0 && static_cast<double>(static_cast<float>(scale)) == scale,
      "loss scaler state: 'scale' must be a positive float32 number, got ", scale);
  TORCH_CHECK(tracker >= 0 && tracker < options_.growth_interval,
              "loss scaler state: '_growth_tracker' ", tracker,
              " is outside [0, growth_interval=", options_.growth_interval, ")");
  scale_.fill_(scale);
  growth_tracker_.fill_(tracker);
}

}  // namespace densenet::train

#include "densenet/train/amp.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

// LibTorch 2.4 replaced the per-device autocast functions (set_cpu_enabled, set_enabled for
// CUDA, set_autocast_cpu_dtype, ...) with ones taking the device type, and deprecated the old
// ones (an error under -Werror).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define DENSENET_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define DENSENET_AUTOCAST_BY_DEVICE_TYPE 0
#endif

namespace densenet::train {
namespace {

void check_device(c10::DeviceType device) {
  TORCH_CHECK(device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA,
              "amp runs on cpu and cuda devices, not on ", device);
}

bool is_enabled(c10::DeviceType device) {
#if DENSENET_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled()
                                        : at::autocast::is_enabled();
#endif
}

void set_enabled(c10::DeviceType device, bool enabled) {
#if DENSENET_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(enabled);
  } else {
    at::autocast::set_enabled(enabled);
  }
#endif
}

c10::ScalarType get_dtype(c10::DeviceType device) {
#if DENSENET_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype()
                                        : at::autocast::get_autocast_gpu_dtype();
#endif
}

void set_dtype(c10::DeviceType device, c10::ScalarType dtype) {
#if DENSENET_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CPU) {
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

}  // namespace

std::optional<c10::ScalarType> parse_amp(const std::string& amp) {
  if (amp == "none") return std::nullopt;
  if (amp == "fp16") return c10::ScalarType::Half;
  if (amp == "bf16") return c10::ScalarType::BFloat16;
  TORCH_CHECK(false, "amp: unknown value '", amp, "': use one of none, fp16, bf16");
}

bool autocast_supported(c10::DeviceType device, c10::ScalarType dtype) {
  if (device == c10::DeviceType::CUDA) return true;
  if (device != c10::DeviceType::CPU) return false;
  try {
    AutocastGuard autocast(device, dtype);
    const at::Tensor a = at::ones({2, 2}, at::kFloat);
    return at::mm(a, a).scalar_type() == dtype;
  } catch (const c10::Error&) {
    return false;
  }
}

AutocastGuard::AutocastGuard(c10::DeviceType device, std::optional<c10::ScalarType> dtype)
    : device_(device) {
  if (!dtype) return;
  check_device(device);
  previous_enabled_ = is_enabled(device);
  previous_dtype_ = get_dtype(device);
  set_dtype(device, *dtype);  // first: it throws for a dtype the device refuses
  set_enabled(device, true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_, previous_enabled_);
  set_dtype(device_, previous_dtype_);
}

}  // namespace densenet::train

#include "util/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace densenet::detail {

// LibTorch 2.4 replaced the per-device autocast functions with ones taking the device type and
// deprecated the old ones (an error under -Werror); train/amp.cpp sets what is read here.
std::optional<c10::ScalarType> autocast_dtype(c10::DeviceType device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (device != c10::DeviceType::CPU && device != c10::DeviceType::CUDA) return std::nullopt;
  if (!at::autocast::is_autocast_enabled(device)) return std::nullopt;
  return at::autocast::get_autocast_dtype(device);
#else
  if (device == c10::DeviceType::CPU) {
    if (!at::autocast::is_cpu_enabled()) return std::nullopt;
    return at::autocast::get_autocast_cpu_dtype();
  }
  if (device == c10::DeviceType::CUDA && at::autocast::is_enabled()) {
    return at::autocast::get_autocast_gpu_dtype();
  }
  return std::nullopt;
#endif
}

}  // namespace densenet::detail

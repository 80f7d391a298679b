#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

namespace densenet::train {

/// The `amp` config key: "none" (float32 throughout), "fp16" (float16 autocast) or "bf16"
/// (bfloat16 autocast), as the autocast dtype (nullopt for none). Throws c10::Error naming the
/// valid values for any other text.
std::optional<c10::ScalarType> parse_amp(const std::string& amp);

/// Whether this LibTorch's autocast runs `dtype` on `device`, found by trying it on a tiny
/// matrix product rather than assumed: LibTorch 1.13's CPU autocast refuses float16
/// ("AutocastCPU only support Bfloat16"), later versions accept it. CUDA takes both (a GPU
/// without bfloat16 arithmetic fails in its kernels, not here).
bool autocast_supported(c10::DeviceType device, c10::ScalarType dtype);

/// Automatic mixed precision for the code in its scope, as `with torch.autocast(device, dtype)`
/// is in Python: operations on the autocast list (convolutions, matrix products, linear layers)
/// run in `dtype` on copies of their float32 inputs, while the parameters, their gradients and
/// the optimiser stay float32 (the master weights). Backward is run outside the scope, in the
/// dtypes forward chose (torch.autocast's documented use).
///
/// Leaving the outermost scope empties autocast's cache of reduced-precision weight copies, as
/// Python's __exit__ does: a copy kept past the optimiser step would hold the old weights.
/// With `dtype` nullopt the guard does nothing (amp none). Throws c10::Error for a device
/// other than cpu and cuda, or a dtype that device's autocast refuses (autocast_supported).
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, std::optional<c10::ScalarType> dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool active_ = false;
  bool previous_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Undefined;
};

}  // namespace densenet::train

#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <optional>

namespace densenet::detail {

/// The dtype autocast runs `device`'s eligible operations in on this thread now (what
/// `with torch.autocast(device, dtype)` set, train::AutocastGuard here), or nullopt where autocast
/// is off for that device. Autocast's state is thread-local and read from the dispatch keys
/// excluded on this thread, so it reads "off" inside an ExcludeDispatchKeyGuard of the autocast
/// keys: ask before opening one.
std::optional<c10::ScalarType> autocast_dtype(c10::DeviceType device);

}  // namespace densenet::detail

#include "densenet/distributed/nccl_settings.h"

#include <c10/util/Exception.h>

#include <string>

namespace densenet::distributed {

bool nccl_available() {
#ifdef DENSENET_WITH_NCCL
  return true;
#else
  return false;
#endif
}

NcclSettings nccl_settings(std::chrono::milliseconds timeout,
                           const std::function<const char*(const char*)>& lookup) {
  TORCH_CHECK(timeout.count() > 0, "dist-timeout must be > 0");
  NcclSettings settings;
  settings.timeout = timeout;
  // PyTorch reads the first of the two names that is set.
  const char* name = "TORCH_NCCL_ASYNC_ERROR_HANDLING";
  const char* handling = lookup(name);
  if (handling == nullptr) {
    name = "NCCL_ASYNC_ERROR_HANDLING";
    handling = lookup(name);
  }
  if (handling == nullptr) {
    settings.variables.emplace_back("TORCH_NCCL_ASYNC_ERROR_HANDLING", "3");
  } else {
    const std::string mode = handling;
    TORCH_CHECK_VALUE(mode == "1" || mode == "3", "environment variable ", name, "=", mode, ": ",
                      mode == "0"   ? "a rank would wait for a lost one beyond dist-timeout"
                      : mode == "2" ? "a rank would go on with aborted communicators"
                                    : "not one of PyTorch's modes 0 to 3",
                      "; unset it (densenet uses 3, PyTorch's default: NCCL's watchdog ends the "
                      "rank) or set 1 or 3");
  }
  const char* dump = lookup("TORCH_NCCL_DUMP_ON_TIMEOUT");
  if (dump == nullptr) settings.variables.emplace_back("TORCH_NCCL_DUMP_ON_TIMEOUT", "0");
  const bool dumping = dump != nullptr && std::string(dump) != "0";
  if (!dumping && lookup("TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC") == nullptr) {
    settings.variables.emplace_back("TORCH_NCCL_WAIT_TIMEOUT_DUMP_MILSEC", "250");
  }
  settings.quiet_log = lookup("TORCH_CPP_LOG_LEVEL") == nullptr;
  return settings;
}

}  // namespace densenet::distributed

// A build without protobuf (cmake -DDENSENET_TENSORBOARD=OFF): no events, and the writer says so.
#include "train/tensorboard_events.h"

#include <stdexcept>

namespace densenet::train::detail {

bool tensorboard_events_built() {
  return false;
}

std::string file_version_event(double) {
  throw std::runtime_error(
      "this densenet was built without TensorBoard support (cmake -DDENSENET_TENSORBOARD=OFF)");
}
std::string scalar_event(const std::string&, double, int64_t, double) {
  return {};
}
std::string session_start_event(int64_t, double) {
  return {};
}

}  // namespace densenet::train::detail

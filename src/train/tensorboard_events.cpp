#include "train/tensorboard_events.h"

// Generated at build time from third_party/tensorboard (TensorBoard's own message definitions).
#include "tensorboard/compat/proto/event.pb.h"

#include <stdexcept>

namespace densenet::train::detail {
namespace {

std::string serialized(const tensorboard::Event& event) {
  std::string bytes;
  if (!event.SerializeToString(&bytes)) {
    throw std::runtime_error("cannot serialize a TensorBoard event");
  }
  return bytes;
}

}  // namespace

bool tensorboard_events_built() {
  return true;
}

std::string file_version_event(double wall_time) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_file_version("brain.Event:2");
  event.mutable_source_metadata()->set_writer("densenet");
  return serialized(event);
}

std::string scalar_event(const std::string& tag, double value, int64_t step, double wall_time) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tensorboard::Summary::Value* summary_value = event.mutable_summary()->add_value();
  summary_value->set_tag(tag);
  summary_value->set_simple_value(static_cast<float>(value));
  return serialized(event);
}

std::string session_start_event(int64_t step, double wall_time) {
  tensorboard::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  event.mutable_session_log()->set_status(tensorboard::SessionLog::START);
  return serialized(event);
}

}  // namespace densenet::train::detail

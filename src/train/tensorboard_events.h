#pragma once

// TensorBoard's Event messages, serialised (tensorboard/compat/proto/event.proto). Compiled apart
// from the rest of the library, with protobuf's headers and without LibTorch's: pip's LibTorch
// ships protobuf 3.13 headers of its own, which would shadow the ones Debian's protoc generated
// the code for (third_party/tensorboard/CMakeLists.txt).
#include <cstdint>
#include <string>

namespace densenet::train::detail {

/// Whether this build writes events (cmake -DDENSENET_TENSORBOARD=ON, the default).
bool tensorboard_events_built();

/// The first event of a file: file_version "brain.Event:2". wall_time: seconds since the epoch.
std::string file_version_event(double wall_time);
/// A scalar summary (simple_value, float32) of `tag` at `step`.
std::string scalar_event(const std::string& tag, double value, int64_t step, double wall_time);
/// SessionLog START at `step`: TensorBoard drops the events of this run at later steps
/// (PyTorch's SummaryWriter(purge_step=step)).
std::string session_start_event(int64_t step, double wall_time);

}  // namespace densenet::train::detail

#pragma once

// TensorBoard event files read back record by record, for the tests. Compiled apart from the
// tests that use it, with protobuf's headers and without LibTorch's (pip's LibTorch ships
// protobuf 3.13 headers that would shadow the ones Debian's protoc generated the messages for),
// so what it returns holds no protobuf types.
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace densenet::train::test_support {

/// One tensorboard.Event (tensorboard/compat/proto/event.proto), the fields our writer sets.
struct ReadEvent {
  double wall_time = 0;                               // seconds since the epoch
  int64_t step = 0;                                   // the x axis
  std::string file_version;                           // "brain.Event:2" in a file's first event
  std::string writer;                                 // source_metadata.writer
  bool session_start = false;                         // a SessionLog START (purge of later steps)
  std::vector<std::pair<std::string, float>> values;  // the summary's (tag, simple_value)
};

/// Every record of the event file at `path`, each length and data CRC-32C checked (a mismatch,
/// a partial record or a record that does not parse fails the calling test, EXPECT-style).
std::vector<ReadEvent> read_events(const std::filesystem::path& path);

}  // namespace densenet::train::test_support

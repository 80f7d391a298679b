#include "event_reader.h"

#include "densenet/train/tensorboard.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "tensorboard/compat/proto/event.pb.h"

namespace densenet::train::test_support {
namespace {

uint64_t little_endian(const std::string& bytes, size_t at, int size) {
  uint64_t value = 0;
  for (int i = size - 1; i >= 0; --i)
    value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  return value;
}

ReadEvent to_read_event(const tensorboard::Event& event) {
  ReadEvent out;
  out.wall_time = event.wall_time();
  out.step = event.step();
  out.file_version = event.file_version();
  out.writer = event.source_metadata().writer();
  out.session_start =
      event.has_session_log() && event.session_log().status() == tensorboard::SessionLog::START;
  for (const auto& value : event.summary().value()) {
    out.values.emplace_back(value.tag(), value.simple_value());
  }
  return out;
}

}  // namespace

std::vector<ReadEvent> read_events(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<ReadEvent> events;
  size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_LE(at + 12, bytes.size()) << "a partial header at byte " << at;
    const uint64_t length = little_endian(bytes, at, 8);
    EXPECT_EQ(little_endian(bytes, at + 8, 4), masked_crc32c(bytes.data() + at, 8));
    EXPECT_LE(at + 16 + length, bytes.size()) << "a partial record at byte " << at;
    const std::string data = bytes.substr(at + 12, length);
    EXPECT_EQ(little_endian(bytes, at + 12 + length, 4), masked_crc32c(data.data(), data.size()));
    tensorboard::Event event;
    EXPECT_TRUE(event.ParseFromString(data)) << "record at byte " << at;
    events.push_back(to_read_event(event));
    at += 16 + length;
  }
  return events;
}

}  // namespace densenet::train::test_support

#include "densenet/train/tensorboard.h"

#include "densenet/util/crc32c.h"

#include "train/tensorboard_events.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>

namespace densenet::train {
namespace {

std::atomic<int64_t> next_writer{0};  // the <counter> of the file names of this process

void put_little_endian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFu));
}

std::string event_file_name() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%010lld", static_cast<long long>(std::time(nullptr)));
  return std::string("events.out.tfevents.") + seconds + "." + host + "." +
         std::to_string(getpid()) + "." + std::to_string(next_writer++);
}

}  // namespace

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

std::string tfrecord(const std::string& data) {
  std::string record;
  record.reserve(data.size() + 16);
  put_little_endian(record, data.size(), 8);
  put_little_endian(record, masked_crc32c(record.data(), 8), 4);
  record += data;
  put_little_endian(record, masked_crc32c(data.data(), data.size()), 4);
  return record;
}

double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TensorBoardWriter::TensorBoardWriter(const std::string& run_dir)
    : path_((std::filesystem::path(run_dir) / event_file_name()).string()) {
  TORCH_CHECK(detail::tensorboard_events_built(),
              "this densenet was built without TensorBoard support (cmake "
              "-DDENSENET_TENSORBOARD=OFF)");
  const std::string first = detail::file_version_event(wall_time_now());
  // "x": O_EXCL, never another writer's file.
  file_ = std::fopen(path_.c_str(), "wbx");
  TORCH_CHECK(file_ != nullptr, "cannot create the TensorBoard event file '", path_,
              "': ", std::strerror(errno));
  write_record(first);
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);  // errors unreported: close() first for them
}

void TensorBoardWriter::close() {
  TORCH_CHECK(file_ != nullptr, "the TensorBoard event file '", path_, "' is closed already");
  // fclose writes what the buffer still holds: on a full disk this is where that fails.
  const bool closed = std::fclose(file_) == 0;
  const int error = errno;
  file_ = nullptr;  // closed even when it failed: no second fclose
  TORCH_CHECK(closed, "cannot write the TensorBoard event file '", path_,
              "': ", std::strerror(error));
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step,
                                   double wall_time) {
  write_record(detail::scalar_event(tag, value, step, wall_time));
}

void TensorBoardWriter::add_session_start(int64_t step, double wall_time) {
  write_record(detail::session_start_event(step, wall_time));
}

void TensorBoardWriter::flush() {
  TORCH_CHECK(std::fflush(file_) == 0, "cannot write the TensorBoard event file '", path_,
              "': ", std::strerror(errno));
}

void TensorBoardWriter::write_record(const std::string& event) {
  const std::string record = tfrecord(event);
  TORCH_CHECK(std::fwrite(record.data(), 1, record.size(), file_) == record.size(),
              "cannot write the TensorBoard event file '", path_, "': ", std::strerror(errno));
}

}  // namespace densenet::train

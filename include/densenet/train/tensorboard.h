#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace densenet::train {

/// TFRecord's masked CRC-32C of `size` bytes: the CRC rotated right by 15 bits plus 0xA282EAD8
/// (a CRC of data that itself holds CRCs would otherwise be weak).
uint32_t masked_crc32c(const void* data, size_t size);

/// One TFRecord, the framing of TensorBoard's event files: the length of `data` (uint64,
/// little-endian), its masked CRC-32C (uint32, little-endian), `data`, and the masked CRC-32C of
/// `data`: data.size() + 16 bytes.
std::string tfrecord(const std::string& data);

/// Seconds since the Unix epoch (system clock): the wall_time of an event.
double wall_time_now();

/// A TensorBoard event file in a run directory, written as TensorFlow's and PyTorch's writers
/// write them: TFRecords of tensorboard.Event messages (tensorboard/compat/proto/event.proto,
/// serialized with Debian's protobuf). The file is
/// `events.out.tfevents.<seconds>.<hostname>.<pid>.<counter>` (PyTorch SummaryWriter's name;
/// counter numbers the writers of this process), so TensorBoard reads a directory's files in
/// the order they were started, and its first record is the `file_version: "brain.Event:2"`
/// event. Events go through a stdio buffer: call flush() where they must be on disk.
///
/// Errors throw c10::Error naming the file and the system's reason (ENOSPC: "No space left on
/// device"); after one, the file may end in a partial record, which TensorBoard's readers treat
/// as the end of the file.
class TensorBoardWriter {
 public:
  /// Creates a new event file in `run_dir` (an existing directory; a file is never
  /// overwritten) and writes the file_version event. Throws c10::Error when it cannot.
  explicit TensorBoardWriter(const std::string& run_dir);
  ~TensorBoardWriter();  // flushes and closes unless close() did; errors are not reported here
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  /// A scalar: Summary.Value{tag, simple_value} at `step`, the form that TensorBoard's scalar
  /// dashboard and EventAccumulator.Scalars() read (torch.utils.tensorboard's add_scalar writes
  /// the same). TensorBoard keeps scalars as float32, so `value` is rounded to float32.
  /// `wall_time` in seconds since the Unix epoch (wall_time_now()).
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time);

  /// A SessionLog START event at `step`: TensorBoard's event reader discards every event read
  /// before it (earlier files of the directory) whose step is >= `step`, across all tags, as
  /// after PyTorch's SummaryWriter(purge_step=step). A resumed run writes it with the first step
  /// it will log, so the events an interrupted run wrote after its checkpoint disappear.
  void add_session_start(int64_t step, double wall_time);

  /// Writes the buffered events to the file. Throws c10::Error when the system refuses them.
  void flush();

  /// Writes the buffered events and closes the file; nothing may be written after it. Throws
  /// c10::Error when the system refuses the events (the file is closed all the same).
  void close();

  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);

  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace densenet::train

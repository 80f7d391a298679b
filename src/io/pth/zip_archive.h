#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace densenet::pth {

/// True when `bytes` starts like a zip archive (a local file header).
bool looks_like_zip(std::string_view bytes);

/// Read-only view of a zip archive held in memory, as PyTorch writes them (entries stored
/// uncompressed, zip64 when large). Every offset and size is checked against the buffer, so a
/// truncated or corrupted archive is a c10::Error naming `source`, never an out-of-bounds read.
class ZipReader {
 public:
  struct Entry {
    std::string name;
    uint64_t data_offset = 0;  // of the entry's bytes in the archive
    uint64_t size = 0;         // stored bytes
    uint32_t crc32 = 0;
    bool compressed = false;  // read() refuses these
  };

  ZipReader(std::string_view bytes, std::string source);

  const std::vector<Entry>& entries() const { return entries_; }
  /// The entry called `name`, or nullptr.
  const Entry* find(const std::string& name) const;
  /// The entry's bytes, after checking their CRC-32.
  std::string_view read(const Entry& entry) const;

 private:
  void read_central_directory();

  std::string_view bytes_;
  std::string source_;
  std::vector<Entry> entries_;
};

/// Builds a zip archive PyTorch's reader (miniz) and Python's zipfile read: entries stored, each
/// entry's data aligned to 64 bytes (as torch.save does, so that it can be memory-mapped),
/// zip64 records where a size or offset needs them.
class ZipWriter {
 public:
  /// `zip64_threshold` exists for tests: sizes and offsets at or above it use zip64 fields.
  explicit ZipWriter(uint64_t zip64_threshold = 0xFFFFFFFFu);

  void add(const std::string& name, std::string_view data);
  /// The finished archive; the writer is empty afterwards.
  std::string finish();

 private:
  struct Written {
    std::string name;
    uint64_t header_offset;
    uint64_t size;
    uint32_t crc32;
  };
  uint64_t zip64_threshold_;
  std::string out_;
  std::vector<Written> written_;
};

}  // namespace densenet::pth

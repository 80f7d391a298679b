#include "io/pth/zip_archive.h"

#include <c10/util/Exception.h>

#include <zlib.h>

#include <algorithm>
#include <set>

namespace densenet::pth {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDirectory = 0x06054b50;
constexpr uint32_t kZip64EndOfCentralDirectory = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kPaddingExtraId = 0x4246;  // "FB", what PyTorch's writer pads with
constexpr uint64_t kAlignment = 64;
constexpr uint16_t kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01

uint64_t read_le(std::string_view bytes, uint64_t offset, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[offset + static_cast<uint64_t>(i)]);
  }
  return value;
}

void write_le(std::string& out, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

uint32_t crc32_of(std::string_view data) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; feed large entries in pieces.
  size_t done = 0;
  while (done < data.size()) {
    const size_t piece = std::min<size_t>(data.size() - done, 1u << 30);
    crc =
        ::crc32(crc, reinterpret_cast<const Bytef*>(data.data() + done), static_cast<uInt>(piece));
    done += piece;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

bool looks_like_zip(std::string_view bytes) {
  return bytes.size() >= 4 && read_le(bytes, 0, 4) == kLocalHeader;
}

ZipReader::ZipReader(std::string_view bytes, std::string source)
    : bytes_(bytes), source_(std::move(source)) {
  read_central_directory();
}

void ZipReader::read_central_directory() {
  const uint64_t size = bytes_.size();
  auto fits = [&](uint64_t offset, uint64_t length) {
    return offset <= size && length <= size - offset;
  };
  TORCH_CHECK(size >= 22, "'", source_, "' is not a valid zip archive: too short (", size,
              " bytes); the file is truncated");
  // The end-of-central-directory record is the last 22 bytes plus an optional comment.
  uint64_t end_record = 0;
  bool found = false;
  const uint64_t lowest = size >= 22 + 0xFFFF ? size - 22 - 0xFFFF : 0;
  for (uint64_t at = size - 22;; --at) {
    if (read_le(bytes_, at, 4) == kEndOfCentralDirectory &&
        at + 22 + read_le(bytes_, at + 20, 2) <= size) {
      end_record = at;
      found = true;
      break;
    }
    if (at == lowest) break;
  }
  TORCH_CHECK(found, "'", source_,
              "' is not a valid zip archive: no end-of-central-directory record (the file is "
              "truncated or not a PyTorch checkpoint)");
  uint64_t entry_count = read_le(bytes_, end_record + 10, 2);
  uint64_t directory_size = read_le(bytes_, end_record + 12, 4);
  uint64_t directory_offset = read_le(bytes_, end_record + 16, 4);
  TORCH_CHECK(read_le(bytes_, end_record + 4, 2) == 0 && read_le(bytes_, end_record + 6, 2) == 0,
              "'", source_, "' is a multi-part zip archive, which is not supported");
  if (entry_count == 0xFFFF || directory_size == 0xFFFFFFFF || directory_offset == 0xFFFFFFFF) {
    TORCH_CHECK(end_record >= 20 && read_le(bytes_, end_record - 20, 4) == kZip64Locator, "'",
                source_, "' is not a valid zip archive: zip64 locator missing");
    const uint64_t record = read_le(bytes_, end_record - 20 + 8, 8);
    TORCH_CHECK(fits(record, 56) && read_le(bytes_, record, 4) == kZip64EndOfCentralDirectory, "'",
                source_, "' is not a valid zip archive: bad zip64 end record offset");
    entry_count = read_le(bytes_, record + 32, 8);
    directory_size = read_le(bytes_, record + 40, 8);
    directory_offset = read_le(bytes_, record + 48, 8);
  }
  TORCH_CHECK(fits(directory_offset, directory_size), "'", source_,
              "' is not a valid zip archive: the central directory (offset ", directory_offset,
              ", ", directory_size, " bytes) lies outside the ", size,
              "-byte file; the file is truncated or corrupted");
  // Each central entry takes at least 46 bytes, which bounds the count before reserving.
  TORCH_CHECK(entry_count <= directory_size / 46, "'", source_,
              "' is not a valid zip archive: ", entry_count, " entries cannot fit in a ",
              directory_size, "-byte central directory");
  entries_.reserve(entry_count);
  std::set<std::string> names;
  uint64_t at = directory_offset;
  const uint64_t end = directory_offset + directory_size;
  for (uint64_t index = 0; index < entry_count; ++index) {
    TORCH_CHECK(at + 46 <= end && read_le(bytes_, at, 4) == kCentralHeader, "'", source_,
                "' is not a valid zip archive: central directory entry ", index, " is corrupted");
    const uint64_t flags = read_le(bytes_, at + 8, 2);
    const uint64_t method = read_le(bytes_, at + 10, 2);
    Entry entry;
    entry.crc32 = static_cast<uint32_t>(read_le(bytes_, at + 16, 4));
    uint64_t compressed = read_le(bytes_, at + 20, 4);
    uint64_t uncompressed = read_le(bytes_, at + 24, 4);
    const uint64_t name_length = read_le(bytes_, at + 28, 2);
    const uint64_t extra_length = read_le(bytes_, at + 30, 2);
    const uint64_t comment_length = read_le(bytes_, at + 32, 2);
    uint64_t header_offset = read_le(bytes_, at + 42, 4);
    const uint64_t record_end = at + 46 + name_length + extra_length + comment_length;
    TORCH_CHECK(record_end <= end, "'", source_,
                "' is not a valid zip archive: central directory entry ", index,
                " runs past the directory");
    entry.name = std::string(bytes_.substr(at + 46, name_length));
    // zip64 extended information replaces exactly the 32-bit fields that are saturated.
    uint64_t extra = at + 46 + name_length;
    const uint64_t extra_end = extra + extra_length;
    while (extra + 4 <= extra_end) {
      const uint64_t id = read_le(bytes_, extra, 2);
      const uint64_t length = read_le(bytes_, extra + 2, 2);
      TORCH_CHECK(extra + 4 + length <= extra_end, "'", source_,
                  "' is not a valid zip archive: bad extra field in entry '", entry.name, "'");
      if (id == kZip64ExtraId) {
        uint64_t field = extra + 4;
        auto next = [&](uint64_t& value) {
          if (value != 0xFFFFFFFF) return;
          TORCH_CHECK(field + 8 <= extra + 4 + length, "'", source_,
                      "' is not a valid zip archive: short zip64 field in '", entry.name, "'");
          value = read_le(bytes_, field, 8);
          field += 8;
        };
        next(uncompressed);
        next(compressed);
        next(header_offset);
      }
      extra += 4 + length;
    }
    TORCH_CHECK((flags & 1) == 0, "'", source_, "': entry '", entry.name,
                "' is encrypted, which a PyTorch checkpoint never is");
    entry.compressed = method != 0;
    TORCH_CHECK(entry.compressed || compressed == uncompressed, "'", source_, "': entry '",
                entry.name, "' is stored but its compressed and uncompressed sizes differ");
    TORCH_CHECK(fits(header_offset, 30) && read_le(bytes_, header_offset, 4) == kLocalHeader, "'",
                source_, "' is not a valid zip archive: the local header of '", entry.name,
                "' is missing or outside the file; the file is truncated or corrupted");
    const uint64_t local_name = read_le(bytes_, header_offset + 26, 2);
    const uint64_t local_extra = read_le(bytes_, header_offset + 28, 2);
    entry.data_offset = header_offset + 30 + local_name + local_extra;
    entry.size = compressed;
    TORCH_CHECK(fits(entry.data_offset, entry.size), "'", source_, "': entry '", entry.name, "' (",
                entry.size, " bytes) runs past the end of the ", size,
                "-byte file; the file is truncated");
    TORCH_CHECK(names.insert(entry.name).second, "'", source_, "': entry '", entry.name,
                "' appears twice");
    entries_.push_back(std::move(entry));
    at = record_end;
  }
}

const ZipReader::Entry* ZipReader::find(const std::string& name) const {
  for (const auto& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::string_view ZipReader::read(const Entry& entry) const {
  TORCH_CHECK(!entry.compressed, "'", source_, "': entry '", entry.name,
              "' is compressed; PyTorch checkpoints store entries uncompressed (was the file "
              "re-zipped?)");
  const std::string_view data = bytes_.substr(entry.data_offset, entry.size);
  TORCH_CHECK(crc32_of(data) == entry.crc32, "'", source_, "': entry '", entry.name,
              "' fails its CRC-32 check; the file is corrupted");
  return data;
}

ZipWriter::ZipWriter(uint64_t zip64_threshold) : zip64_threshold_(zip64_threshold) {}

void ZipWriter::add(const std::string& name, std::string_view data) {
  TORCH_INTERNAL_ASSERT(!name.empty() && name.size() < 0xFFFF);
  const uint64_t header_offset = out_.size();
  const bool zip64 = data.size() >= zip64_threshold_;
  const uint32_t crc = crc32_of(data);
  std::string extra;
  if (zip64) {
    write_le(extra, kZip64ExtraId, 2);
    write_le(extra, 16, 2);
    write_le(extra, data.size(), 8);
    write_le(extra, data.size(), 8);
  }
  // Pad with an extra field so that the data starts on a 64-byte boundary.
  const uint64_t unpadded = header_offset + 30 + name.size() + extra.size();
  uint64_t padding = (kAlignment - unpadded % kAlignment) % kAlignment;
  if (padding != 0 && padding < 4) padding += kAlignment;
  if (padding != 0) {
    write_le(extra, kPaddingExtraId, 2);
    write_le(extra, padding - 4, 2);
    extra.append(padding - 4, 'Z');
  }
  write_le(out_, kLocalHeader, 4);
  write_le(out_, zip64 ? 45 : 20, 2);  // version needed
  write_le(out_, 0, 2);                // flags
  write_le(out_, 0, 2);                // stored
  write_le(out_, 0, 2);                // time
  write_le(out_, kDosDate, 2);
  write_le(out_, crc, 4);
  write_le(out_, zip64 ? 0xFFFFFFFF : data.size(), 4);
  write_le(out_, zip64 ? 0xFFFFFFFF : data.size(), 4);
  write_le(out_, name.size(), 2);
  write_le(out_, extra.size(), 2);
  out_ += name;
  out_ += extra;
  TORCH_INTERNAL_ASSERT(out_.size() % kAlignment == 0);
  out_.append(data.data(), data.size());
  written_.push_back({name, header_offset, data.size(), crc});
}

std::string ZipWriter::finish() {
  const uint64_t directory_offset = out_.size();
  for (const auto& entry : written_) {
    const bool big_size = entry.size >= zip64_threshold_;
    const bool big_offset = entry.header_offset >= zip64_threshold_;
    std::string extra;
    if (big_size || big_offset) {
      write_le(extra, kZip64ExtraId, 2);
      write_le(extra, (big_size ? 16 : 0) + (big_offset ? 8 : 0), 2);
      if (big_size) {
        write_le(extra, entry.size, 8);
        write_le(extra, entry.size, 8);
      }
      if (big_offset) write_le(extra, entry.header_offset, 8);
    }
    write_le(out_, kCentralHeader, 4);
    write_le(out_, 45, 2);  // version made by
    write_le(out_, (big_size || big_offset) ? 45 : 20, 2);
    write_le(out_, 0, 2);
    write_le(out_, 0, 2);
    write_le(out_, 0, 2);
    write_le(out_, kDosDate, 2);
    write_le(out_, entry.crc32, 4);
    write_le(out_, big_size ? 0xFFFFFFFF : entry.size, 4);
    write_le(out_, big_size ? 0xFFFFFFFF : entry.size, 4);
    write_le(out_, entry.name.size(), 2);
    write_le(out_, extra.size(), 2);
    write_le(out_, 0, 2);  // comment
    write_le(out_, 0, 2);  // disk
    write_le(out_, 0, 2);  // internal attributes
    write_le(out_, 0, 4);  // external attributes
    write_le(out_, big_offset ? 0xFFFFFFFF : entry.header_offset, 4);
    out_ += entry.name;
    out_ += extra;
  }
  const uint64_t directory_size = out_.size() - directory_offset;
  const uint64_t count = written_.size();
  const bool zip64 =
      count >= 0xFFFF || directory_offset >= zip64_threshold_ || directory_size >= zip64_threshold_;
  if (zip64) {
    const uint64_t record = out_.size();
    write_le(out_, kZip64EndOfCentralDirectory, 4);
    write_le(out_, 44, 8);  // size of the rest of this record
    write_le(out_, 45, 2);
    write_le(out_, 45, 2);
    write_le(out_, 0, 4);
    write_le(out_, 0, 4);
    write_le(out_, count, 8);
    write_le(out_, count, 8);
    write_le(out_, directory_size, 8);
    write_le(out_, directory_offset, 8);
    write_le(out_, kZip64Locator, 4);
    write_le(out_, 0, 4);
    write_le(out_, record, 8);
    write_le(out_, 1, 4);
  }
  write_le(out_, kEndOfCentralDirectory, 4);
  write_le(out_, 0, 2);
  write_le(out_, 0, 2);
  write_le(out_, zip64 ? 0xFFFF : count, 2);
  write_le(out_, zip64 ? 0xFFFF : count, 2);
  write_le(out_, zip64 ? 0xFFFFFFFF : directory_size, 4);
  write_le(out_, zip64 ? 0xFFFFFFFF : directory_offset, 4);
  write_le(out_, 0, 2);
  written_.clear();
  return std::move(out_);
}

}  // namespace densenet::pth

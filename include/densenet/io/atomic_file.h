#pragma once

#include <string>
#include <string_view>

namespace densenet {

/// Replaces `path` with `contents` so that a reader (or a crash) sees either the old file or
/// the complete new one, never a torn write: the bytes go to a temporary file in the same
/// directory, are flushed to disk, and the temporary is renamed over `path`.
/// Throws c10::Error naming the path and the system error.
void write_file_atomically(const std::string& path, std::string_view contents);

/// Whole file as bytes; throws c10::Error naming the path when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace densenet

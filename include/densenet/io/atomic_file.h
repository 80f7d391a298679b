#pragma once

#include <string>
#include <string_view>

namespace densenet {

/// Replaces `path` with `contents` so that a reader (or a crash) sees either the old file or
/// the complete new one, never a torn write: the bytes go to a temporary file in the same
/// directory, are flushed to disk, and the temporary is renamed over `path`.
/// - A symlink is followed: its target is replaced, the link stays.
/// - A replaced file keeps its permission bits; a new one gets 0666 less the umask.
/// - A character device or FIFO (/dev/stdout, /dev/null, a pipe) is written in place, as a
///   shell's `>` would: there is nothing to replace atomically.
/// - A directory, block device or socket is refused.
/// Throws c10::Error naming the path and the system error or the kind of file.
void write_file_atomically(const std::string& path, std::string_view contents);

/// Whole file as bytes; throws c10::Error naming the path when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace densenet

#pragma once

#include <cstdint>
#include <string>

namespace densenet {

/// Counts the bytes of every CPU tensor allocation (through c10's allocator hook), so that the
/// memory of a training step can be measured rather than estimated, and optionally caps them:
/// an allocation past the cap fails as an out-of-memory error (c10::OutOfMemoryError), which
/// lets a CPU run find "the largest batch that trains within N GiB" as the original project
/// measured on a GPU. Memory allocated outside LibTorch's allocator (oneDNN and BLAS scratch)
/// is not counted; process peak RSS covers it.
class MemoryTracker {
 public:
  /// Installs the tracking allocator on first use; tensors allocated before that are not
  /// counted when freed.
  static MemoryTracker& instance();

  int64_t current_bytes() const;
  int64_t peak_bytes() const;
  /// Restarts peak tracking from the current allocation level.
  void reset_peak();
  /// Allocations that would take current bytes past `bytes` fail; 0 removes the cap.
  void set_limit(int64_t bytes);
  int64_t limit() const;

 private:
  MemoryTracker();
};

/// Sets a cap for the lifetime of the object and restores the previous one.
class ScopedMemoryLimit {
 public:
  explicit ScopedMemoryLimit(int64_t bytes);
  ~ScopedMemoryLimit();
  ScopedMemoryLimit(const ScopedMemoryLimit&) = delete;
  ScopedMemoryLimit& operator=(const ScopedMemoryLimit&) = delete;

 private:
  int64_t previous_;
};

/// Peak resident set size of this process so far (VmHWM), in bytes; 0 where unavailable.
int64_t process_peak_rss_bytes();
/// Current resident set size (VmRSS), in bytes; 0 where unavailable.
int64_t process_rss_bytes();
/// Resets the kernel's peak RSS mark to the current RSS (Linux: /proc/self/clear_refs);
/// returns false where unsupported.
bool reset_process_peak_rss();

/// "4GiB", "512MiB", "1.5G", "1000000" -> bytes; throws c10::Error on anything else.
int64_t parse_byte_size(const std::string& text);
/// 1536 -> "1.50 KiB".
std::string format_bytes(int64_t bytes);

}  // namespace densenet

#include "densenet/tools/memory_tracker.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

// LibTorch 2.3 made Allocator::allocate non-const and added the pure virtual copy_data.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define DENSENET_ALLOCATOR_2_3 1
#else
#define DENSENET_ALLOCATOR_2_3 0
#endif

namespace densenet {

namespace {

std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
std::atomic<int64_t> g_limit{0};

// Sizes of live allocations by address. DataPtrs must stay "simple" (context == data) because
// parts of LibTorch use raw_allocate/raw_deleter, so the size cannot travel in a context.
std::mutex g_sizes_mutex;
std::unordered_map<void*, int64_t> g_sizes;
c10::DeleterFnPtr g_wrapped_deleter = nullptr;

void tracked_delete(void* data) {
  if (data == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(g_sizes_mutex);
    const auto it = g_sizes.find(data);
    if (it != g_sizes.end()) {
      g_current.fetch_sub(it->second, std::memory_order_relaxed);
      g_sizes.erase(it);
    }
  }
  g_wrapped_deleter(data);
}

class TrackingAllocator final : public c10::Allocator {
 public:
  explicit TrackingAllocator(c10::Allocator* wrapped) : wrapped_(wrapped) {
    g_wrapped_deleter = wrapped->raw_deleter();
    TORCH_INTERNAL_ASSERT(g_wrapped_deleter != nullptr,
                          "the CPU allocator has no raw deleter; cannot track it");
  }

#if DENSENET_ALLOCATOR_2_3
  c10::DataPtr allocate(size_t n) override {
    return track(n);
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
#else
  c10::DataPtr allocate(size_t n) const override {
    return track(n);
  }
#endif
  c10::DeleterFnPtr raw_deleter() const override {
    return &tracked_delete;
  }

 private:
  c10::DataPtr track(size_t n) const {
    const int64_t bytes = static_cast<int64_t>(n);
    const int64_t limit = g_limit.load(std::memory_order_relaxed);
    const int64_t after = g_current.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (limit > 0 && after > limit) {
      g_current.fetch_sub(bytes, std::memory_order_relaxed);
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CPU memory cap exceeded: allocating ",
                       format_bytes(bytes), " with ", format_bytes(after - bytes),
                       " in use would pass the cap of ", format_bytes(limit));
    }
    int64_t peak = g_peak.load(std::memory_order_relaxed);
    while (after > peak && !g_peak.compare_exchange_weak(peak, after)) {
    }
    void* data = nullptr;
    try {
      data = wrapped_->raw_allocate(n);
    } catch (...) {
      g_current.fetch_sub(bytes, std::memory_order_relaxed);
      throw;
    }
    if (data != nullptr) {
      std::lock_guard<std::mutex> lock(g_sizes_mutex);
      g_sizes[data] = bytes;
    } else {
      g_current.fetch_sub(bytes, std::memory_order_relaxed);
    }
    return c10::DataPtr(data, data, &tracked_delete, c10::Device(c10::DeviceType::CPU));
  }

  c10::Allocator* wrapped_;
};

std::string read_proc_status_field(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return line.substr(std::strlen(field));
  }
  return "";
}

int64_t proc_status_kib(const char* field) {
  const std::string value = read_proc_status_field(field);
  if (value.empty()) return 0;
  return std::stoll(value) * 1024;
}

}  // namespace

MemoryTracker::MemoryTracker() {
  static TrackingAllocator allocator(c10::GetAllocator(c10::DeviceType::CPU));
  // The highest priority, so that nothing registered later replaces it.
  c10::SetAllocator(c10::DeviceType::CPU, &allocator, /*priority=*/255);
}

MemoryTracker& MemoryTracker::instance() {
  static MemoryTracker tracker;
  return tracker;
}

int64_t MemoryTracker::current_bytes() const {
  return g_current.load();
}
int64_t MemoryTracker::peak_bytes() const {
  return g_peak.load();
}
void MemoryTracker::reset_peak() {
  g_peak.store(g_current.load());
}
void MemoryTracker::set_limit(int64_t bytes) {
  TORCH_CHECK(bytes >= 0, "memory cap must be >= 0 bytes, got ", bytes);
  g_limit.store(bytes);
}
int64_t MemoryTracker::limit() const {
  return g_limit.load();
}

ScopedMemoryLimit::ScopedMemoryLimit(int64_t bytes) : previous_(MemoryTracker::instance().limit()) {
  MemoryTracker::instance().set_limit(bytes);
}
ScopedMemoryLimit::~ScopedMemoryLimit() {
  MemoryTracker::instance().set_limit(previous_);
}

int64_t process_peak_rss_bytes() {
  return proc_status_kib("VmHWM:");
}
int64_t process_rss_bytes() {
  return proc_status_kib("VmRSS:");
}

bool reset_process_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear) return false;
  clear << "5";
  return static_cast<bool>(clear.flush());
}

int64_t parse_byte_size(const std::string& text) {
  // strtod, not a stream's >> double: the stream fails on "16EiB" (it reads "16E" as an
  // exponent without digits) and leaves 0, which would pass for a size.
  const bool starts_as_number =
      !text.empty() && (std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.');
  char* end = nullptr;
  const double number = starts_as_number ? std::strtod(text.c_str(), &end) : 0.0;
  const std::string digits =
      starts_as_number ? std::string(text.c_str(), static_cast<size_t>(end - text.c_str()))
                       : std::string();
  std::string unit = starts_as_number ? std::string(end) : std::string();
  unit.erase(0, unit.find_first_not_of(" \t"));
  unit.erase(unit.find_last_not_of(" \t") + 1);
  TORCH_CHECK(!digits.empty() && digits.find_first_of("xX") == std::string::npos &&
                  std::isfinite(number) && number >= 0 &&
                  unit.find_first_of(" \t") == std::string::npos,
              "cannot read '", text, "' as a size: use e.g. 4GiB, 512MiB, 1.5G or a byte count");
  double scale = 1;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "K" || unit == "KiB" || unit == "k") {
    scale = 1024.0;
  } else if (unit == "M" || unit == "MiB") {
    scale = 1024.0 * 1024;
  } else if (unit == "G" || unit == "GiB") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "T" || unit == "TiB") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else if (unit == "P" || unit == "PiB") {
    scale = 1024.0 * 1024 * 1024 * 1024 * 1024;
  } else if (unit == "E" || unit == "EiB") {  // read, to be refused as too large below
    scale = 1024.0 * 1024 * 1024 * 1024 * 1024 * 1024;
  } else if (unit == "KB") {
    scale = 1e3;
  } else if (unit == "MB") {
    scale = 1e6;
  } else if (unit == "GB") {
    scale = 1e9;
  } else {
    TORCH_CHECK(false, "unknown size unit '", unit, "' in '", text,
                "': use B, KiB, MiB, GiB, TiB, PiB, EiB (or K, M, G, T, P, E), KB, MB, GB");
  }
  // 2^62 bytes (4 EiB) is beyond any machine and keeps sums of sizes from overflowing.
  TORCH_CHECK(number * scale <= 4611686018427387904.0, "size '", text,
              "' is too large: at most 4 EiB");
  return static_cast<int64_t>(number * scale);
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (std::abs(value) >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), unit == 0 ? "%.0f %s" : "%.2f %s", value, units[unit]);
  return buffer;
}

}  // namespace densenet

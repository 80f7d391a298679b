// libFuzzer target for the checkpoint reader: any byte string must either load or raise
// c10::Error; a crash, hang, leak, sanitizer report or uncaught exception is a bug. What loads
// must also survive the rest of the weights path and a write/read round trip.

#include "densenet/io/pth_file.h"
#include "densenet/io/weights.h"

#include <c10/util/Exception.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  densenet::pth::Checkpoint checkpoint;
  try {
    checkpoint = densenet::pth::parse_checkpoint(bytes, "fuzz");
  } catch (const c10::Error&) {
    return 0;
  }
  try {
    const densenet::LocatedStateDict located = densenet::locate_state_dict(checkpoint.root, "fuzz");
    densenet::to_torchvision_keys(densenet::tensors_of(located.dict, "fuzz"));
  } catch (const c10::Error&) {
  }
  std::string written;
  try {
    written = densenet::pth::serialize_checkpoint(checkpoint.root);
  } catch (const c10::Error&) {
    return 0;  // e.g. an integer too large for LONG1: refused, not crashed
  }
  // What this library writes, it must read back.
  try {
    densenet::pth::parse_checkpoint(written, "fuzz round trip");
  } catch (const c10::Error& error) {
    std::fprintf(stderr, "round trip failed: %s\n", error.what_without_backtrace());
    std::abort();
  }
  return 0;
}

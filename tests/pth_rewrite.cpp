// Test helper: reads a .pth (zip or legacy) and writes it back in the zip format, so that a
// Python test can check that what C++ writes is what Python wrote.
// usage: pth_rewrite IN OUT [--zip64]   (--zip64 forces zip64 records on every entry)

#include "densenet/io/atomic_file.h"
#include "densenet/io/pth_file.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4 || (argc == 4 && std::string(argv[3]) != "--zip64")) {
    std::fprintf(stderr, "usage: pth_rewrite IN OUT [--zip64]\n");
    return 2;
  }
  try {
    const densenet::pth::Checkpoint checkpoint = densenet::pth::read_checkpoint(argv[1]);
    const uint64_t threshold = argc == 4 ? 0 : 0xFFFFFFFFu;
    densenet::write_file_atomically(
        argv[2], densenet::pth::serialize_checkpoint(checkpoint.root, threshold));
  } catch (const c10::Error& error) {
    std::fprintf(stderr, "pth_rewrite: %s\n", error.what_without_backtrace());
    return 1;
  }
  return 0;
}

// Hand-written because Debian 12 packages no CRC-32C library for C or C++: `apt-cache search
// crc32c` finds only python3-crc32c; google/crc32c is not packaged; Abseil's absl/crc arrived in
// its 2023 release, after Debian 12's 20220623; zlib's crc32 uses the other polynomial; and
// libcrcutil-dev (Google Code's crcutil 1.0, 2011) has had no upstream since. The checksum covers
// TensorBoard event records (a few hundred bytes per epoch), so the byte-wise table is plenty.
#include "densenet/util/crc32c.h"

#include <array>

namespace densenet {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // 0x1EDC6F41 bit-reversed

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? kPolynomial : 0u);
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = make_table();

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = kTable[(crc ^ bytes[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace densenet

#pragma once

#include <cstddef>
#include <cstdint>

namespace densenet {

/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial value and final XOR
/// 0xFFFFFFFF), the checksum of iSCSI (RFC 3720), ext4, LevelDB and TensorFlow's TFRecord files.
/// `crc` continues an earlier result: crc32c(b, nb, crc32c(a, na)) is the CRC of a then b.
/// crc32c("123456789", 9) == 0xE3069283.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

}  // namespace densenet

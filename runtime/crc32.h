// CRC-32 (IEEE 802.3, reflected, as zlib and PNG use) for section checksums.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk {

// Continues a running CRC: crc32(crc32(0, a), b) == crc32 of a then b.
uint32_t crc32(uint32_t crc, const void* data, size_t size);

}  // namespace stk

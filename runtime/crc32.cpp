#include "runtime/crc32.h"

namespace stk {
namespace {

// Slicing-by-4 tables built at compile time: 4 KB of flash, ~4x faster than
// the bytewise loop, which matters when verifying a large mapped model.
struct Crc32Tables {
  uint32_t t[4][256];
  constexpr Crc32Tables() : t{} {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 4; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
    }
  }
};
constexpr Crc32Tables kTables;

}  // namespace

uint32_t crc32(uint32_t crc, const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (size >= 4) {
    c ^= uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
    c = kTables.t[3][c & 0xFFu] ^ kTables.t[2][(c >> 8) & 0xFFu] ^ kTables.t[1][(c >> 16) & 0xFFu] ^
        kTables.t[0][c >> 24];
    p += 4;
    size -= 4;
  }
  while (size-- > 0) c = kTables.t[0][(c ^ *p++) & 0xFFu] ^ (c >> 8);
  return ~c;
}

}  // namespace stk

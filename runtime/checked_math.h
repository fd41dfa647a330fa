// Overflow-checked size arithmetic for everything derived from a model file.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk {

inline bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }
inline bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

// True when [offset, offset+size) lies inside [0, total).
inline bool range_ok(uint64_t offset, uint64_t size, uint64_t total) {
  uint64_t end;
  return add_ok(offset, size, &end) && end <= total;
}

inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace stk

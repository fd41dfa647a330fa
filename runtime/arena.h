// Bump allocation inside the caller's arena.
//
// The same planning code runs twice: once with no memory to measure the
// arena a configuration needs (stk_session_arena_size), once to place the
// buffers for real (stk_session_init). Sharing one code path is what keeps
// the size query exact.
//
// Sizes are counted in 64 bits with overflow checks, so a hostile or huge
// configuration on a 32-bit target reports "too large" instead of wrapping.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk {

struct Arena {
  uint8_t* base;  // null while measuring
  size_t cap;
  uint64_t used;  // bytes needed so far; UINT64_MAX once the sum overflowed

  // Reserves `bytes` at `align` (a power of two <= 64); returns null while
  // measuring or once the arena is exhausted (then `used` keeps counting so
  // the message can say how much was needed).
  void* take(uint64_t bytes, size_t align = 64) {
    if (used == UINT64_MAX) return nullptr;
    // Align relative to the base address, as the real placement will be.
    const uint64_t start = uint64_t(reinterpret_cast<uintptr_t>(base)) + used;
    const uint64_t pad = (align - start % align) % align;
    uint64_t offset, end;
    if (__builtin_add_overflow(used, pad, &offset) || __builtin_add_overflow(offset, bytes, &end)) {
      used = UINT64_MAX;
      return nullptr;
    }
    used = end;
    if (base == nullptr || used > cap) return nullptr;
    return base + offset;
  }
  template <typename T>
  T* take_array(uint64_t count, size_t align = 64) {
    uint64_t bytes;
    if (__builtin_mul_overflow(count, uint64_t(sizeof(T)), &bytes)) {
      used = UINT64_MAX;
      return nullptr;
    }
    return static_cast<T*>(take(bytes, align));
  }
  bool measuring() const { return base == nullptr; }
  bool overflowed() const { return used > cap; }
  // The bytes a caller must provide (with `slack` for aligning an arbitrary
  // start address), or false when that does not fit in size_t.
  bool required(size_t slack, size_t* out) const {
    if (used == UINT64_MAX || used > uint64_t(SIZE_MAX) - slack) return false;
    *out = size_t(used) + slack;
    return true;
  }
};

}  // namespace stk

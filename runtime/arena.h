// Bump allocation inside the caller's arena.
//
// The same planning code runs twice: once with no memory to measure the
// arena a configuration needs (stk_session_arena_size), once to place the
// buffers for real (stk_session_init). Sharing one code path is what keeps
// the size query exact.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk {

struct Arena {
  uint8_t* base;  // null while measuring
  size_t cap;
  size_t used;

  // Reserves `bytes` at `align` (a power of two); returns null while
  // measuring or once the arena is exhausted (then used keeps counting so
  // the message can say how much was needed).
  void* take(size_t bytes, size_t align = 64) {
    uintptr_t start = reinterpret_cast<uintptr_t>(base) + used;
    size_t pad = (align - start % align) % align;
    size_t offset = used + pad;
    used = offset + bytes;
    if (base == nullptr || used > cap) return nullptr;
    return base + offset;
  }
  template <typename T>
  T* take_array(size_t count, size_t align = 64) {
    return static_cast<T*>(take(count * sizeof(T), align));
  }
  bool measuring() const { return base == nullptr; }
  bool overflowed() const { return used > cap; }
};

}  // namespace stk

// Counts calls into the allocator: this header replaces malloc, calloc,
// realloc, free, aligned_alloc and the global operator new/delete with
// versions that count while a CountedWindow is open and forward to glibc's
// own allocator. Include it in exactly one source file of a test binary (the
// definitions are the binary's allocator). Under AddressSanitizer or
// ThreadSanitizer, which own the allocator (a TSan binary that replaces malloc
// crashes before main), nothing is replaced and windows count zero: tests
// check STK_SANITIZER_OWNS_MALLOC before asserting on a count.
#pragma once
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STK_SANITIZER_OWNS_MALLOC 1
#endif
#include <atomic>
#include <cstdlib>
#include <new>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
void* __libc_memalign(size_t, size_t);
}

namespace stk::test {
inline std::atomic<bool> g_alloc_counting{false};
inline std::atomic<long> g_alloc_calls{0};
inline void note_alloc_call() {
  if (g_alloc_counting.load(std::memory_order_relaxed)) g_alloc_calls.fetch_add(1, std::memory_order_relaxed);
}

// Allocator calls made between construction and stop().
struct CountedWindow {
  CountedWindow() {
    g_alloc_calls = 0;
    g_alloc_counting = true;
  }
  long stop() {
    g_alloc_counting = false;
    return g_alloc_calls.load();
  }
  ~CountedWindow() { g_alloc_counting = false; }
};
}  // namespace stk::test

#if !defined(STK_SANITIZER_OWNS_MALLOC)
extern "C" {
void* malloc(size_t n) {
  stk::test::note_alloc_call();
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  stk::test::note_alloc_call();
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  stk::test::note_alloc_call();
  return __libc_realloc(p, n);
}
void free(void* p) {
  if (p != nullptr) stk::test::note_alloc_call();
  __libc_free(p);
}
void* aligned_alloc(size_t align, size_t n) {
  stk::test::note_alloc_call();
  return __libc_memalign(align, n);
}
}
void* operator new(size_t n) {
  stk::test::note_alloc_call();
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  if (p != nullptr) stk::test::note_alloc_call();
  __libc_free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, size_t) noexcept { operator delete(p); }
void operator delete[](void* p, size_t) noexcept { operator delete(p); }
#endif

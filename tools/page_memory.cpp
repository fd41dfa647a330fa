#include "tools/page_memory.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace stk::host {

void* alloc_pages(size_t bytes, PageSize pages) {
  const size_t align = pages == PageSize::Huge ? size_t(2) << 20 : 64;
  const size_t size = bytes == 0 ? align : (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, size);
  if (p == nullptr) throw std::bad_alloc();
  // A hint: without THP support the pages stay small.
  if (pages == PageSize::Huge) madvise(p, size, MADV_HUGEPAGE);
  return p;
}

int64_t anon_huge_page_bytes() {
  std::FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
  if (f == nullptr) return -1;
  char line[256];
  int64_t kib = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    long long v = 0;
    if (std::sscanf(line, "AnonHugePages: %lld kB", &v) == 1) kib = v;
  }
  std::fclose(f);
  return kib < 0 ? -1 : kib * 1024;
}

}  // namespace stk::host

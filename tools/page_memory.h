// Host buffers that stand in for a mapped model file: in 2 MiB pages where
// Linux gives them (transparent huge pages, "madvise" mode included), as
// ports/posix gives a model's weights section when it maps the file (see
// port::advise_streamed). Decode streams every weight once per token; with
// 4 KiB pages each stream crosses a page every 4 KiB, which the hardware
// prefetchers do not cross and each of which needs its own TLB entry.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk::host {

enum class PageSize { Small, Huge };

// `bytes` of uninitialised memory, 64-byte aligned; Huge: 2 MiB aligned and
// advised for huge pages (the size rounded up to 2 MiB). Throws
// std::bad_alloc. Free with std::free.
void* alloc_pages(size_t bytes, PageSize pages);

// Bytes of this process's anonymous memory that sit in huge pages now
// (/proc/self/smaps_rollup AnonHugePages), or -1 where that is not known.
int64_t anon_huge_page_bytes();

}  // namespace stk::host

// Bare-metal port (Cortex-M, no OS): no file system, no threads.
//
//  * Models are opened from memory (stk_model_open_memory on a const array in
//    flash); map_file reports Unsupported.
//  * alloc/dealloc serve the model handle (and its small indexes) from a
//    static pool at open time: no heap at all. Size it with
//    -DSTK_BAREMETAL_POOL_BYTES=N (default 4 KB; the model handle of a
//    5-layer model is well under 1 KB).
//  * now_ns counts SysTick (processor clock, STK_BAREMETAL_CPU_HZ, default
//    25 MHz as on the MPS2 boards) and extends its 24-bit counter in
//    SysTick_Handler. Build with -DSTK_BAREMETAL_NO_SYSTICK to leave SysTick
//    to the application (now_ns then returns 0).
//  * One thread: thread_start reports Unsupported, so sessions run on the
//    caller only and the wait/wake pair is never needed; wait returns at once
//    (a spurious wake-up, which the contract allows).
#include <cstddef>
#include <cstdint>

#include "ports/port.h"

#ifndef STK_BAREMETAL_POOL_BYTES
#define STK_BAREMETAL_POOL_BYTES 4096
#endif
#ifndef STK_BAREMETAL_CPU_HZ
#define STK_BAREMETAL_CPU_HZ 25000000u
#endif

namespace stk {
namespace port {

Status map_file(const char* path, MappedFile* out, Message* msg) {
  out->data = nullptr;
  out->size = 0;
  out->handle = 0;
  return fail(msg, Status::Unsupported, "no file system on this port (cannot open %s): open the model from memory",
              path != nullptr ? path : "(null)");
}

void unmap_file(MappedFile* file) {
  file->data = nullptr;
  file->size = 0;
  file->handle = 0;
}

// Never reached: without map_file there is no mapped file to read from (models
// in memory are copied from their image by the runtime itself).
Status read_mapped(const MappedFile&, uint64_t, void*, size_t, Message* msg) {
  return fail(msg, Status::Unsupported, "no file system on this port");
}
void release_mapped(const MappedFile&, uint64_t, uint64_t) {}
void advise_streamed(const MappedFile&, uint64_t, uint64_t) {}

// ---- Static pool --------------------------------------------------------------
// A stack of blocks, each preceded by a header holding its size and a "free"
// mark. dealloc marks a block free and pops every free block from the top, so
// open/close cycles (and failed opens) give all memory back.
namespace {

struct BlockHeader {
  uint32_t bytes;  // payload bytes, a multiple of kAlign
  uint32_t free;
  uint32_t prev;   // offset of the previous block's header + 1 (0 = none)
  uint32_t pad;
};
constexpr size_t kAlign = 16;
static_assert(sizeof(BlockHeader) % kAlign == 0, "header keeps payloads aligned");

alignas(kAlign) uint8_t g_pool[STK_BAREMETAL_POOL_BYTES];
size_t g_top = 0;       // first unused byte
uint32_t g_last = 0;    // offset of the topmost header + 1 (0 = empty)

}  // namespace

void* alloc(size_t bytes) {
  const size_t payload = (bytes + kAlign - 1) & ~(kAlign - 1);
  if (payload < bytes || sizeof g_pool - g_top < sizeof(BlockHeader) || payload > sizeof g_pool - g_top - sizeof(BlockHeader)) {
    return nullptr;  // pool exhausted: raise STK_BAREMETAL_POOL_BYTES
  }
  BlockHeader* h = reinterpret_cast<BlockHeader*>(g_pool + g_top);
  h->bytes = uint32_t(payload);
  h->free = 0;
  h->prev = g_last;
  h->pad = 0;
  g_last = uint32_t(g_top) + 1;
  g_top += sizeof(BlockHeader) + payload;
  return h + 1;
}

void dealloc(void* p) {
  if (p == nullptr) return;
  BlockHeader* h = static_cast<BlockHeader*>(p) - 1;
  h->free = 1;
  while (g_last != 0) {
    BlockHeader* top = reinterpret_cast<BlockHeader*>(g_pool + (g_last - 1));
    if (!top->free) break;
    g_top = g_last - 1;
    g_last = top->prev;
  }
}

// ---- Clock ----------------------------------------------------------------------
#if defined(STK_BAREMETAL_NO_SYSTICK) || !defined(__ARM_ARCH_PROFILE) || __ARM_ARCH_PROFILE != 'M'
uint64_t now_ns() { return 0; }
#else
namespace {
// SysTick registers (Armv7-M ARM, B3.3).
volatile uint32_t* const kSystCsr = reinterpret_cast<volatile uint32_t*>(0xE000E010u);
volatile uint32_t* const kSystRvr = reinterpret_cast<volatile uint32_t*>(0xE000E014u);
volatile uint32_t* const kSystCvr = reinterpret_cast<volatile uint32_t*>(0xE000E018u);
constexpr uint32_t kReload = 0x00FFFFFFu;
volatile uint32_t g_wraps = 0;
bool g_started = false;
}  // namespace

extern "C" void SysTick_Handler(void) { g_wraps = g_wraps + 1; }

uint64_t now_ns() {
  if (!g_started) {
    *kSystRvr = kReload;
    *kSystCvr = 0;
    *kSystCsr = 7u;  // enable, interrupt on wrap, processor clock
    g_started = true;
  }
  uint32_t w, v;
  do {
    w = g_wraps;
    v = *kSystCvr;
  } while (w != g_wraps);
  const uint64_t ticks = uint64_t(w) * (uint64_t(kReload) + 1) + (kReload - v);
  return ticks / (STK_BAREMETAL_CPU_HZ / 1000000u) * 1000u;
}
#endif

// ---- Threads (none) ----------------------------------------------------------
Status thread_start(Thread* t, void (*)(void*), void*, Message* msg) {
  t->handle = 0;
  return fail(msg, Status::Unsupported, "no threads on the bare-metal port");
}

void thread_join(Thread*) {}

void wait_while_equal(std::atomic<uint32_t>*, uint32_t) { cpu_relax(); }

void wake_all(std::atomic<uint32_t>*) {}

void yield_core() {}

void cpu_relax() {
#if defined(__arm__)
  __asm__ __volatile__("nop");
#endif
}

}  // namespace port
}  // namespace stk

/*
 * 64-bit atomics for Armv7-M / Armv8-M Mainline (bare metal).
 *
 * M-profile cores have LDREX/STREX only up to 32 bits, so GCC lowers
 * std::atomic<uint64_t> to __atomic_*_8 library calls, which arm-none-eabi
 * does not ship (there is no libatomic). These make each operation atomic
 * against interrupt handlers by masking interrupts (PRIMASK) around it;
 * that is all a single-core MCU needs. The runtime uses one such word (the
 * thread pool's job/chunk counter), touched a few times per matrix product.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t irq_save(void) {
  uint32_t primask;
  __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
  return primask;
}

static inline void irq_restore(uint32_t primask) { __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory"); }

uint64_t __atomic_load_8(const volatile void* mem, int model) {
  (void)model;
  uint32_t k = irq_save();
  uint64_t v = *(const volatile uint64_t*)mem;
  irq_restore(k);
  return v;
}

void __atomic_store_8(volatile void* mem, uint64_t val, int model) {
  (void)model;
  uint32_t k = irq_save();
  *(volatile uint64_t*)mem = val;
  irq_restore(k);
}

uint64_t __atomic_exchange_8(volatile void* mem, uint64_t val, int model) {
  (void)model;
  uint32_t k = irq_save();
  uint64_t old = *(volatile uint64_t*)mem;
  *(volatile uint64_t*)mem = val;
  irq_restore(k);
  return old;
}

bool __atomic_compare_exchange_8(volatile void* mem, void* expected, uint64_t desired, bool weak, int success,
                                 int failure) {
  (void)weak;
  (void)success;
  (void)failure;
  uint64_t want;
  memcpy(&want, expected, sizeof want);
  uint32_t k = irq_save();
  uint64_t cur = *(volatile uint64_t*)mem;
  bool ok = cur == want;
  if (ok) *(volatile uint64_t*)mem = desired;
  irq_restore(k);
  if (!ok) memcpy(expected, &cur, sizeof cur);
  return ok;
}

uint64_t __atomic_fetch_add_8(volatile void* mem, uint64_t val, int model) {
  (void)model;
  uint32_t k = irq_save();
  uint64_t old = *(volatile uint64_t*)mem;
  *(volatile uint64_t*)mem = old + val;
  irq_restore(k);
  return old;
}

uint64_t __atomic_fetch_sub_8(volatile void* mem, uint64_t val, int model) {
  (void)model;
  uint32_t k = irq_save();
  uint64_t old = *(volatile uint64_t*)mem;
  *(volatile uint64_t*)mem = old - val;
  irq_restore(k);
  return old;
}

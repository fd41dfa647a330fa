/*
 * Cortex-M startup for the stackrt bare-metal port (MPS2 AN386 / AN500).
 *
 * Reset: enable the FPU, copy .data from flash, zero .bss, run static
 * constructors (.preinit_array/.init_array), call main(), then exit() which
 * runs atexit handlers/static destructors and ends in _exit() ->
 * semihosting SYS_EXIT_EXTENDED, so qemu terminates with main's status.
 * Unexpected exceptions print their number and registers on the semihosting
 * console and exit with status 128 + exception number (HardFault -> 131),
 * so a crashing test fails instead of hanging.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "semihost.h"

/* Linker-script symbols (ports/baremetal/mps2-an386.ld). */
extern uint32_t __stack_top[];
extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
typedef void (*stackrt_init_fn)(void);
extern stackrt_init_fn __preinit_array_start[], __preinit_array_end[];
extern stackrt_init_fn __init_array_start[], __init_array_end[];
extern stackrt_init_fn __fini_array_start[], __fini_array_end[];

int main(void);

/* C++ static objects register their destructors against __dso_handle, which
 * crtbegin.o normally defines; the port links with -nostartfiles. */
__attribute__((weak)) void *__dso_handle = &__dso_handle;

static void run_fini_array(void) {
  for (stackrt_init_fn *f = __fini_array_end; f > __fini_array_start;) (*--f)();
}

/* Runs on the reset stack with the FPU already enabled. */
__attribute__((noreturn, used)) void stackrt_c_startup(void) {
  /* Word loops on purpose: memcpy/memset may not be usable before .data. */
  for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) *dst++ = *src++;
  for (uint32_t *p = __bss_start; p < __bss_end;) *p++ = 0;

  /* Like newlib's crt0: registering with atexit() also links in newlib's
   * exit-handler list, without which __cxa_atexit (C++ static destructors)
   * silently does nothing (it only weakly references that code). */
  atexit(run_fini_array);
  for (stackrt_init_fn *f = __preinit_array_start; f < __preinit_array_end; ++f) (*f)();
  for (stackrt_init_fn *f = __init_array_start; f < __init_array_end; ++f) (*f)();

  exit(main());
}

/* Naked so that no compiler-generated code (which may use VFP registers
 * under -mfloat-abi=hard) runs before CPACR grants access to CP10/CP11. */
__attribute__((naked, noreturn)) void Reset_Handler(void) {
  __asm__ volatile(
#if defined(__ARM_FP)
      "ldr r0, =0xE000ED88      \n" /* SCB->CPACR */
      "ldr r1, [r0]             \n"
      "orr r1, r1, #(0xF << 20) \n" /* CP10, CP11: full access */
      "str r1, [r0]             \n"
      "dsb                      \n"
      "isb                      \n"
#endif
      "ldr r0, =__stack_top     \n" /* also when entered by a debugger */
      "mov sp, r0               \n"
      "b stackrt_c_startup      \n"
      ".ltorg                   \n");
}

/* ---- exceptions --------------------------------------------------------- */

static void put_hex(char *out, uint32_t v) {
  for (int i = 7; i >= 0; --i, v >>= 4) out[i] = "0123456789abcdef"[v & 0xF];
}

/* Called with the exception number and the stacked frame (r0-r3, r12, lr,
 * pc, xpsr). Avoids printf: the heap or stdio state may be what broke. */
__attribute__((noreturn, used)) void stackrt_fault(uint32_t exc, const uint32_t *frame) {
  static const char *const names[] = {"?", "Reset", "NMI", "HardFault", "MemManage",
                                      "BusFault", "UsageFault"};
  char line[] = "stackrt: exception xxxxxxxx pc=xxxxxxxx lr=xxxxxxxx cfsr=xxxxxxxx hfsr=xxxxxxxx ";
  put_hex(line + 19, exc);
  put_hex(line + 31, frame[6]);
  put_hex(line + 43, frame[5]);
  put_hex(line + 57, *(volatile uint32_t *)0xE000ED28u); /* SCB->CFSR */
  put_hex(line + 71, *(volatile uint32_t *)0xE000ED2Cu); /* SCB->HFSR */
  semihost_write0(line);
  semihost_write0(exc < 7 ? names[exc] : "IRQ/other");
  semihost_write0("\n");
  semihost_exit(128 + (int)exc);
}

__attribute__((naked)) void Default_Handler(void) {
  __asm__ volatile(
      "tst lr, #4          \n" /* EXC_RETURN bit 2: which stack has the frame */
      "ite eq              \n"
      "mrseq r1, msp       \n"
      "mrsne r1, psp       \n"
      "mrs r0, ipsr        \n" /* exception number (bits 8:0, rest RAZ) */
      "b stackrt_fault     \n");
}

#define STACKRT_WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("Default_Handler")))
STACKRT_WEAK_HANDLER(NMI_Handler);
STACKRT_WEAK_HANDLER(HardFault_Handler);
STACKRT_WEAK_HANDLER(MemManage_Handler);
STACKRT_WEAK_HANDLER(BusFault_Handler);
STACKRT_WEAK_HANDLER(UsageFault_Handler);
STACKRT_WEAK_HANDLER(SVC_Handler);
STACKRT_WEAK_HANDLER(DebugMon_Handler);
STACKRT_WEAK_HANDLER(PendSV_Handler);
STACKRT_WEAK_HANDLER(SysTick_Handler);

/* Initial SP + 15 system exceptions + 32 external interrupts (AN386 has 32;
 * the AN500's extra lines are unused by this port). Placed at 0x0 by the
 * linker script. */
typedef void (*stackrt_vector)(void);
#define D4 Default_Handler, Default_Handler, Default_Handler, Default_Handler
struct stackrt_vector_table {
  uint32_t *initial_sp;
  stackrt_vector handler[15 + 32];
};
__attribute__((section(".isr_vector"), used))
const struct stackrt_vector_table stackrt_vector_table = {
    __stack_top,
    {
        Reset_Handler,      /*  1 */
        NMI_Handler,        /*  2 */
        HardFault_Handler,  /*  3 */
        MemManage_Handler,  /*  4 */
        BusFault_Handler,   /*  5 */
        UsageFault_Handler, /*  6 */
        0, 0, 0, 0,         /*  7-10 reserved */
        SVC_Handler,        /* 11 */
        DebugMon_Handler,   /* 12 */
        0,                  /* 13 reserved */
        PendSV_Handler,     /* 14 */
        SysTick_Handler,    /* 15 */
        D4, D4, D4, D4, D4, D4, D4, D4 /* IRQ 0-31 */
    }};
#undef D4

/*
 * Minimal Arm semihosting client for Cortex-M (Thumb "bkpt 0xAB").
 *
 * Semihosting calls trap to the debugger/emulator. Under
 *   qemu-system-arm ... -semihosting-config enable=on,target=native
 * they are serviced by qemu on the host. Without a semihosting host (a real
 * board with no debugger attached) "bkpt" escalates to HardFault, so release
 * firmware must route output elsewhere (e.g. a UART).
 */
#ifndef STACKRT_PORT_BAREMETAL_SEMIHOST_H
#define STACKRT_PORT_BAREMETAL_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Operation numbers (Arm "Semihosting for AArch32 and AArch64", v2.0). */
enum {
  SEMIHOST_SYS_OPEN = 0x01,
  SEMIHOST_SYS_CLOSE = 0x02,
  SEMIHOST_SYS_WRITEC = 0x03,
  SEMIHOST_SYS_WRITE0 = 0x04,
  SEMIHOST_SYS_WRITE = 0x05,
  SEMIHOST_SYS_READ = 0x06,
  SEMIHOST_SYS_ISTTY = 0x09,
  SEMIHOST_SYS_SEEK = 0x0A,
  SEMIHOST_SYS_FLEN = 0x0C,
  SEMIHOST_SYS_CLOCK = 0x10,
  SEMIHOST_SYS_TIME = 0x11,
  SEMIHOST_SYS_ERRNO = 0x13,
  SEMIHOST_SYS_EXIT = 0x18,
  SEMIHOST_SYS_EXIT_EXTENDED = 0x20,
  SEMIHOST_SYS_ELAPSED = 0x30,
  SEMIHOST_SYS_TICKFREQ = 0x31
};

/* SYS_OPEN modes (index into the ISO C fopen mode strings). */
enum {
  SEMIHOST_OPEN_R = 0,    /* "r"  */
  SEMIHOST_OPEN_RB = 1,   /* "rb" */
  SEMIHOST_OPEN_W = 4,    /* "w"  */
  SEMIHOST_OPEN_WB = 5,   /* "wb" */
  SEMIHOST_OPEN_A = 8,    /* "a"  */
  SEMIHOST_OPEN_AB = 9    /* "ab" */
};

/* Exception reasons for SYS_EXIT. */
#define SEMIHOST_ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define SEMIHOST_ADP_STOPPED_RUNTIME_ERROR 0x20023u

/* Raw call: r0 = op, r1 = arg; returns r0. */
static inline uintptr_t semihost_call(uint32_t op, uintptr_t arg) {
  register uintptr_t r0 __asm__("r0") = op;
  register uintptr_t r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

/* Console. */
void semihost_writec(char c);
void semihost_write0(const char *nul_terminated);
/* Host console handles (":tt"), opened lazily; -1 if unavailable. */
int semihost_stdin(void);
int semihost_stdout(void);
int semihost_stderr(void);

/* Host files. Return -1 on error (semihost_errno() has the host errno). */
int semihost_open(const char *path, int mode);
int semihost_close(int handle);
/* Both return the number of bytes NOT transferred (0 = all done). */
size_t semihost_write(int handle, const void *buf, size_t len);
size_t semihost_read(int handle, void *buf, size_t len);
int semihost_seek(int handle, size_t pos); /* absolute; 0 on success */
long semihost_flen(int handle);
int semihost_istty(int handle);
int semihost_errno(void);

/* Time. */
long semihost_clock_cs(void); /* centiseconds since start, -1 if unknown */
long semihost_time(void);     /* seconds since the Unix epoch */
/* High-resolution elapsed ticks (qemu: host nanoseconds); 0 if unsupported. */
uint64_t semihost_elapsed_ticks(void);
uint64_t semihost_tick_freq(void); /* ticks per second, 0 if unsupported */

/* Terminate the program; status 0 = success. Under qemu the status becomes
 * the exit code of qemu (SYS_EXIT_EXTENDED); on hosts that only know the
 * plain SYS_EXIT, any nonzero status is reported as a run-time error (qemu
 * then exits 1). */
__attribute__((noreturn)) void semihost_exit(int status);

#ifdef __cplusplus
}
#endif

#endif /* STACKRT_PORT_BAREMETAL_SEMIHOST_H */

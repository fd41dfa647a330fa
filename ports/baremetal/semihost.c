/* Minimal Arm semihosting client; see semihost.h. */
#include "semihost.h"

#include <string.h>

void semihost_writec(char c) {
  semihost_call(SEMIHOST_SYS_WRITEC, (uintptr_t)&c);
}

void semihost_write0(const char *s) {
  semihost_call(SEMIHOST_SYS_WRITE0, (uintptr_t)s);
}

int semihost_open(const char *path, int mode) {
  uintptr_t block[3] = {(uintptr_t)path, (uintptr_t)mode, (uintptr_t)strlen(path)};
  return (int)semihost_call(SEMIHOST_SYS_OPEN, (uintptr_t)block);
}

int semihost_close(int handle) {
  uintptr_t block[1] = {(uintptr_t)handle};
  return (int)semihost_call(SEMIHOST_SYS_CLOSE, (uintptr_t)block);
}

size_t semihost_write(int handle, const void *buf, size_t len) {
  uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buf, (uintptr_t)len};
  return (size_t)semihost_call(SEMIHOST_SYS_WRITE, (uintptr_t)block);
}

size_t semihost_read(int handle, void *buf, size_t len) {
  uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buf, (uintptr_t)len};
  return (size_t)semihost_call(SEMIHOST_SYS_READ, (uintptr_t)block);
}

int semihost_seek(int handle, size_t pos) {
  uintptr_t block[2] = {(uintptr_t)handle, (uintptr_t)pos};
  return (int)semihost_call(SEMIHOST_SYS_SEEK, (uintptr_t)block);
}

long semihost_flen(int handle) {
  uintptr_t block[1] = {(uintptr_t)handle};
  return (long)semihost_call(SEMIHOST_SYS_FLEN, (uintptr_t)block);
}

int semihost_istty(int handle) {
  uintptr_t block[1] = {(uintptr_t)handle};
  return (int)semihost_call(SEMIHOST_SYS_ISTTY, (uintptr_t)block);
}

int semihost_errno(void) { return (int)semihost_call(SEMIHOST_SYS_ERRNO, 0); }

long semihost_clock_cs(void) { return (long)semihost_call(SEMIHOST_SYS_CLOCK, 0); }

long semihost_time(void) { return (long)semihost_call(SEMIHOST_SYS_TIME, 0); }

uint64_t semihost_elapsed_ticks(void) {
  uint32_t block[2] = {0, 0}; /* little-endian 64-bit count: low, high */
  if ((int)semihost_call(SEMIHOST_SYS_ELAPSED, (uintptr_t)block) != 0) return 0;
  return ((uint64_t)block[1] << 32) | block[0];
}

uint64_t semihost_tick_freq(void) {
  int f = (int)semihost_call(SEMIHOST_SYS_TICKFREQ, 0);
  return f > 0 ? (uint64_t)f : 0;
}

/* ":tt" is the host console; the open mode selects stdin ("r"), stdout
 * ("w") or stderr ("a"). Handles are cached; -2 = not opened yet. */
static int g_console[3] = {-2, -2, -2};

static int console(int which) {
  static const int modes[3] = {SEMIHOST_OPEN_R, SEMIHOST_OPEN_W, SEMIHOST_OPEN_A};
  if (g_console[which] == -2) g_console[which] = semihost_open(":tt", modes[which]);
  return g_console[which];
}

int semihost_stdin(void) { return console(0); }
int semihost_stdout(void) { return console(1); }
int semihost_stderr(void) {
  int h = console(2);
  return h >= 0 ? h : console(1); /* old hosts: no stderr, use stdout */
}

void semihost_exit(int status) {
  /* SYS_EXIT_EXTENDED (semihosting v2) carries the status for A32/T32. */
  uintptr_t block[2] = {SEMIHOST_ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)status};
  semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, (uintptr_t)block);
  /* Still here: the host lacks SYS_EXIT_EXTENDED. The A32/T32 SYS_EXIT takes
   * the reason code itself in r1 (not a block) and has no status field. */
  semihost_call(SEMIHOST_SYS_EXIT, status == 0 ? SEMIHOST_ADP_STOPPED_APPLICATION_EXIT
                                               : SEMIHOST_ADP_STOPPED_RUNTIME_ERROR);
  for (;;) {
    __asm__ volatile("wfi");
  }
}

/*
 * newlib (newlib-nano) system-call layer for the stackrt bare-metal port.
 *
 * stdin/stdout/stderr go to the semihosting console; open() on other paths
 * opens host files through semihosting (handy for loading test data under
 * qemu); the heap (malloc/new) grows from __heap_start to __heap_end, both
 * defined by the linker script, and never into the stack.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/times.h>
#include <sys/time.h>
#include <fcntl.h>
#include <unistd.h>

#include "semihost.h"

/* ---- file descriptors ------------------------------------------------- */

#define STACKRT_MAX_FDS 16
/* Semihosting handle per fd; -1 = free. fds 0..2 use the console. */
static int g_fd_handle[STACKRT_MAX_FDS] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
/* Current offset per fd (the semihosting host does not report it). */
static long g_fd_pos[STACKRT_MAX_FDS];

static int handle_of(int fd) {
  switch (fd) {
    case 0: return semihost_stdin();
    case 1: return semihost_stdout();
    case 2: return semihost_stderr();
    default: return (fd > 2 && fd < STACKRT_MAX_FDS) ? g_fd_handle[fd] : -1;
  }
}

int _open(const char *path, int flags, ...) {
  int mode;
  switch (flags & O_ACCMODE) {
    case O_RDONLY: mode = SEMIHOST_OPEN_RB; break;
    case O_WRONLY: mode = (flags & O_APPEND) ? SEMIHOST_OPEN_AB : SEMIHOST_OPEN_WB; break;
    default: mode = (flags & O_TRUNC) ? SEMIHOST_OPEN_WB + 2 /* "wb+" */
                                      : SEMIHOST_OPEN_RB + 2; /* "rb+" */
  }
  int fd = 3;
  while (fd < STACKRT_MAX_FDS && g_fd_handle[fd] != -1) ++fd;
  if (fd == STACKRT_MAX_FDS) { errno = EMFILE; return -1; }
  int h = semihost_open(path, mode);
  if (h < 0) { errno = ENOENT; return -1; }
  g_fd_handle[fd] = h;
  g_fd_pos[fd] = 0;
  if ((flags & O_APPEND) && (flags & O_ACCMODE) == O_WRONLY) g_fd_pos[fd] = semihost_flen(h);
  return fd;
}

int _close(int fd) {
  if (fd >= 0 && fd <= 2) return 0;
  int h = handle_of(fd);
  if (h < 0) { errno = EBADF; return -1; }
  g_fd_handle[fd] = -1;
  return semihost_close(h) == 0 ? 0 : (errno = EIO, -1);
}

int _write(int fd, const char *buf, int len) {
  int h = handle_of(fd);
  if (h < 0) {
    if (fd == 1 || fd == 2) { /* no ":tt": fall back to char output */
      for (int i = 0; i < len; ++i) semihost_writec(buf[i]);
      return len;
    }
    errno = EBADF;
    return -1;
  }
  size_t left = semihost_write(h, buf, (size_t)len);
  if (left > (size_t)len || (left == (size_t)len && len > 0)) { errno = EIO; return -1; }
  if (fd > 2) g_fd_pos[fd] += len - (int)left;
  return len - (int)left;
}

int _read(int fd, char *buf, int len) {
  int h = handle_of(fd);
  if (h < 0) { errno = EBADF; return -1; }
  size_t left = semihost_read(h, buf, (size_t)len);
  if (left > (size_t)len) { errno = EIO; return -1; }
  if (fd > 2) g_fd_pos[fd] += len - (int)left;
  return len - (int)left;
}

int _lseek(int fd, int offset, int whence) {
  int h = handle_of(fd);
  if (fd <= 2 || h < 0) { errno = ESPIPE; return -1; }
  long pos;
  /* Semihosting only seeks to absolute positions. */
  if (whence == SEEK_SET) pos = offset;
  else if (whence == SEEK_CUR) pos = g_fd_pos[fd] + offset;
  else if (whence == SEEK_END) pos = semihost_flen(h) + offset;
  else { errno = EINVAL; return -1; }
  if (pos < 0 || semihost_seek(h, (size_t)pos) != 0) { errno = EINVAL; return -1; }
  g_fd_pos[fd] = pos;
  return (int)pos;
}

int _fstat(int fd, struct stat *st) {
  memset(st, 0, sizeof(*st));
  if (fd <= 2) { st->st_mode = S_IFCHR; return 0; }
  int h = handle_of(fd);
  if (h < 0) { errno = EBADF; return -1; }
  st->st_mode = S_IFREG;
  st->st_size = semihost_flen(h);
  return 0;
}

int _isatty(int fd) {
  if (fd >= 0 && fd <= 2) return 1;
  errno = ENOTTY;
  return 0;
}

/* ---- heap ---------------------------------------------------------------- */

extern char __heap_start[]; /* linker script */
extern char __heap_end[];
static char *g_brk = __heap_start;

void *_sbrk(ptrdiff_t incr) {
  char *prev = g_brk;
  if (incr > __heap_end - g_brk || incr < __heap_start - g_brk) {
    errno = ENOMEM;
    return (void *)-1;
  }
  g_brk += incr;
  return prev;
}

/* ---- process ------------------------------------------------------------- */

__attribute__((noreturn)) void _exit(int status) { semihost_exit(status); }

int _getpid(void) { return 1; }

/* raise()/abort() end up here: terminate like a POSIX shell reports a
 * signal death (128 + signal; SIGABRT -> 134). */
int _kill(int pid, int sig) {
  if (pid == 1) semihost_exit(128 + sig);
  errno = EINVAL;
  return -1;
}

/* ---- time ---------------------------------------------------------------- */

/* clock(): newlib's CLOCKS_PER_SEC is 100 on Arm = semihosting centiseconds. */
clock_t _times(struct tms *t) {
  long cs = semihost_clock_cs();
  if (t) {
    t->tms_utime = (clock_t)cs;
    t->tms_stime = t->tms_cutime = t->tms_cstime = 0;
  }
  return (clock_t)cs;
}

int _gettimeofday(struct timeval *tv, void *tz) {
  (void)tz;
  if (tv) {
    tv->tv_sec = semihost_time();
    tv->tv_usec = 0;
  }
  return 0;
}

/* ---- unsupported --------------------------------------------------------- */

int _link(const char *a, const char *b) { (void)a; (void)b; errno = EMLINK; return -1; }
int _unlink(const char *p) { (void)p; errno = ENOENT; return -1; }

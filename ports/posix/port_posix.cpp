// POSIX port (Linux): mmap for models, pthreads and futexes for workers.
#include "ports/port.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace stk {
namespace port {

Status map_file(const char* path, MappedFile* out, Message* msg) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(msg, Status::Io, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return fail(msg, Status::Io, "cannot stat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fail(msg, Status::Io, "%s is not a regular file", path);
  }
  if (st.st_size == 0) {
    close(fd);
    return fail(msg, Status::BadFormat, "%s is empty", path);
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  if (p == MAP_FAILED) {
    close(fd);
    return fail(msg, Status::Io, "cannot map %s: %s", path, strerror(e));
  }
  out->data = static_cast<const uint8_t*>(p);
  out->size = size;
  out->handle = uintptr_t(fd) + 1;  // the descriptor stays open for read_mapped
  return Status::Ok;
}

void unmap_file(MappedFile* file) {
  if (file->handle != 0 && file->data != nullptr) {
    munmap(const_cast<uint8_t*>(file->data), file->size);
  }
  if (file->handle != 0) close(int(file->handle - 1));
  file->data = nullptr;
  file->size = 0;
  file->handle = 0;
}

Status read_mapped(const MappedFile& file, uint64_t offset, void* dst, size_t bytes, Message* msg) {
  uint8_t* out = static_cast<uint8_t*>(dst);
  while (bytes > 0) {
    const size_t chunk = bytes < (size_t(1) << 30) ? bytes : (size_t(1) << 30);
    const ssize_t got = pread(int(file.handle - 1), out, chunk, off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      return fail(msg, Status::Io, "cannot read %zu model bytes at offset %llu: %s", bytes, (unsigned long long)offset,
                  got < 0 ? strerror(errno) : "file shrank");
    }
    out += got;
    offset += uint64_t(got);
    bytes -= size_t(got);
  }
  return Status::Ok;
}

namespace {
// madvise over the whole pages inside [offset, offset + bytes) of a mapping.
void advise_whole_pages(const MappedFile& file, uint64_t offset, uint64_t bytes, int advice) {
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const uint64_t first = (offset + page - 1) / page * page;
  const uint64_t end = offset + bytes < file.size ? offset + bytes : file.size;
  const uint64_t last = end / page * page;
  if (last <= first) return;
  madvise(const_cast<uint8_t*>(file.data) + first, size_t(last - first), advice);
}
}  // namespace

void release_mapped(const MappedFile& file, uint64_t offset, uint64_t bytes) {
  advise_whole_pages(file, offset, bytes, MADV_DONTNEED);
}

// Whole pages only: the advice must not reach the BitStack blocks beside the
// weights, which sessions read with pread.
void advise_streamed(const MappedFile& file, uint64_t offset, uint64_t bytes) {
  advise_whole_pages(file, offset, bytes, MADV_HUGEPAGE);
}

void* alloc(size_t bytes) { return malloc(bytes); }
void dealloc(void* p) { free(p); }

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

namespace {
void* run_thread(void* p) {
  Thread* t = static_cast<Thread*>(p);
  t->fn(t->arg);
  return nullptr;
}
}  // namespace

Status thread_start(Thread* t, void (*fn)(void*), void* arg, Message* msg) {
  static_assert(sizeof(pthread_t) <= sizeof(uintptr_t), "pthread_t fits the port handle");
  t->fn = fn;
  t->arg = arg;
  pthread_attr_t attr;
  int rc = pthread_attr_init(&attr);
  if (rc != 0) return fail(msg, Status::OutOfMemory, "cannot start worker thread: %s", strerror(rc));
  // An explicit size: the C library's default ranges from 128 KiB (musl) to
  // 8 MiB (glibc), and the kernels need a known amount (port.h).
  size_t stack = kWorkerStackBytes;
  if (stack < size_t(PTHREAD_STACK_MIN)) stack = size_t(PTHREAD_STACK_MIN);
  rc = pthread_attr_setstacksize(&attr, stack);
  pthread_t th;
  if (rc == 0) rc = pthread_create(&th, &attr, run_thread, t);
  pthread_attr_destroy(&attr);
  if (rc != 0) return fail(msg, Status::OutOfMemory, "cannot start worker thread: %s", strerror(rc));
  t->handle = uintptr_t(th);
  return Status::Ok;
}

void thread_join(Thread* t) { pthread_join(pthread_t(t->handle), nullptr); }

void wait_while_equal(std::atomic<uint32_t>* word, uint32_t expected) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "futex word is 32 bits");
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

void yield_core() { sched_yield(); }

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && __ARM_ARCH >= 7)
  __asm__ __volatile__("yield");
#endif
}

}  // namespace port
}  // namespace stk

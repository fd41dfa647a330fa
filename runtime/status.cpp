#include "runtime/status.h"

#include <cstdarg>
#include <cstdio>

namespace stk {

Status fail(Message* m, Status s, const char* fmt, ...) {
  if (m != nullptr && m->buf != nullptr && m->cap > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->buf, m->cap, fmt, ap);
    va_end(ap);
  }
  return s;
}

const char* status_name(Status s) {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::InvalidArgument: return "invalid argument";
    case Status::Io: return "i/o error";
    case Status::BadFormat: return "bad model file";
    case Status::Unsupported: return "unsupported";
    case Status::ArenaTooSmall: return "arena too small";
    case Status::OutOfMemory: return "out of memory";
    case Status::ContextFull: return "context full";
    case Status::Checksum: return "checksum mismatch";
    case Status::Budget: return "budget out of range";
    case Status::BufferTooSmall: return "buffer too small";
  }
  return "unknown status";
}

}  // namespace stk

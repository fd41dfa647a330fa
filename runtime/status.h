// Status codes and error messages for the runtime.
//
// The runtime never throws: every fallible call returns a Status and, when the
// caller passed a Message, writes one line that names the cause in numbers
// ("arena too small: need 1843200 bytes, have 1048576").
#pragma once
#include <cstddef>

namespace stk {

// Values equal the public stk_status codes in c_api/stackrt.h.
enum class Status : int {
  Ok = 0,
  InvalidArgument = -1,
  Io = -2,
  BadFormat = -3,
  Unsupported = -4,
  ArenaTooSmall = -5,
  OutOfMemory = -6,
  ContextFull = -7,
  Checksum = -8,
  Budget = -9,
  BufferTooSmall = -10,
};

// A caller-owned text buffer for the human-readable cause of a failure.
struct Message {
  char* buf;
  size_t cap;
};

// Formats the cause into `m` (which may be null) and returns `s`, so a failure
// path reads `return fail(msg, Status::BadFormat, "...", ...);`.
Status fail(Message* m, Status s, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char* status_name(Status s);

}  // namespace stk

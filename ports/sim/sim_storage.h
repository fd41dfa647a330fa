// The simulation layer of `stk sim`: a device with a RAM limit for weights and
// a storage chip that weights are read from, with a modeled transfer time.
//
// The runtime reads BitStack blocks with one sequential read per budget change
// (runtime/block_pool.cpp); `stk sim` sees each through the session's read
// hook and books it here as a read of that many bytes, splits it into requests of at most max_read_bytes, and
// charges
//     ns = reads * latency_ns + floor(bytes * 1e9 / read_bytes_per_s)
// Dropping blocks costs no I/O. Every read is checked against the RAM limit,
// so a runtime that ever held more weight bytes than the budget allows fails
// the simulation instead of passing silently.
//
// Runtime rules apply: no exceptions, no heap; a failure returns a Status and
// names the numbers.
#pragma once
#include <cstdint>

#include "runtime/status.h"

namespace stk {
namespace sim {

struct StorageModel {
  const char* name;
  uint64_t read_bytes_per_s;  // sustained sequential read, 1 .. kMaxReadBytesPerS
  uint64_t latency_ns;        // fixed cost of each read request (command, seek, setup)
  uint64_t max_read_bytes;    // largest single request; 0 = one request per contiguous range
  const char* basis;          // where the figures come from
};

constexpr uint64_t kMaxReadBytesPerS = 100000000000000ull;  // 100 TB/s: keeps the arithmetic exact in 64 bits

// Presets: nvme, emmc, sdcard, spi-flash (figures and reasons in sim_storage.cpp).
const StorageModel* storage_presets(uint32_t* count);
const StorageModel* storage_preset(const char* name);  // nullptr if unknown

// Status::InvalidArgument for a bandwidth of 0 or above kMaxReadBytesPerS.
Status storage_model_check(const StorageModel& s, Message* msg);

// Requests needed for one contiguous range of `bytes` (0 for 0 bytes).
uint64_t storage_reads(const StorageModel& s, uint64_t bytes);
// reads * latency_ns + floor(bytes * 1e9 / read_bytes_per_s), exact.
uint64_t storage_transfer_ns(const StorageModel& s, uint64_t bytes, uint64_t reads);

struct Transfer {
  uint64_t bytes, reads, ns;
};

struct Device {
  StorageModel storage;
  uint64_t ram_limit;   // weight bytes the device may hold now
  uint64_t resident;    // weight bytes held now
  // Totals since init.
  uint64_t bytes_read, reads, transfer_ns, bytes_dropped;
};

void device_init(Device* d, const StorageModel& storage, uint64_t ram_limit);
// The OS grants or takes memory. Lowering below `resident` is allowed: the
// loader must then drop down to it before device_check passes.
void device_set_limit(Device* d, uint64_t ram_limit);
// Reads `bytes` (one contiguous range) into RAM. Status::Budget, changing
// nothing, if resident + bytes would exceed the limit.
Status device_read(Device* d, uint64_t bytes, Transfer* out, Message* msg);
// Frees `bytes`. Status::InvalidArgument if more than is resident.
Status device_drop(Device* d, uint64_t bytes, Message* msg);
// Status::Budget if more is resident than the limit allows.
Status device_check(const Device* d, Message* msg);

}  // namespace sim
}  // namespace stk

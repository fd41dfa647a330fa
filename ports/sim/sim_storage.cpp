#include "ports/sim/sim_storage.h"

#include <cstring>

namespace stk {
namespace sim {
namespace {

// MB = 10^6 bytes, as storage vendors rate their parts.
const StorageModel kPresets[] = {
    {"nvme", 2000000000ull, 80000ull, 128ull * 1024,
     "PCIe 3.0 x4 consumer NVMe SSD: rated 2-3.5 GB/s sequential read, take 2000 MB/s; "
     "~12k IOPS at queue depth 1 for 4 KiB random reads = ~80 us per request; "
     "Linux reads files in 128 KiB readahead windows"},
    {"emmc", 250000000ull, 250000ull, 512ull * 1024,
     "eMMC 5.1 HS400 (phones, SBCs): 400 MB/s bus, parts rated 250-300 MB/s sequential read, take 250; "
     "3-5k random-read IOPS = ~250 us per request; the Linux MMC host splits at 512 KiB"},
    {"sdcard", 40000000ull, 700000ull, 512ull * 1024,
     "UHS-I microSD, class A1 (e.g. Raspberry Pi 4, whose host tops out near 45 MB/s): take 40 MB/s; "
     "A1 guarantees 1500 random-read IOPS = 667 us, take 700 us per request; 512 KiB requests"},
    {"spi-flash", 40000000ull, 2000ull, 0ull,
     "Quad-SPI NOR flash at 80 MHz in quad-I/O fast read: 4 bits per clock = 40 MB/s; each read costs "
     "command, 24-bit address and dummy cycles (~20 clocks) plus DMA setup, ~2 us; "
     "one command streams any length, so no request limit"},
};

}  // namespace

const StorageModel* storage_presets(uint32_t* count) {
  *count = uint32_t(sizeof kPresets / sizeof kPresets[0]);
  return kPresets;
}

const StorageModel* storage_preset(const char* name) {
  for (const StorageModel& s : kPresets) {
    if (name != nullptr && std::strcmp(s.name, name) == 0) return &s;
  }
  return nullptr;
}

Status storage_model_check(const StorageModel& s, Message* msg) {
  if (s.read_bytes_per_s == 0 || s.read_bytes_per_s > kMaxReadBytesPerS) {
    return fail(msg, Status::InvalidArgument, "storage read bandwidth %llu bytes/s is outside 1..%llu",
                (unsigned long long)s.read_bytes_per_s, (unsigned long long)kMaxReadBytesPerS);
  }
  return Status::Ok;
}

uint64_t storage_reads(const StorageModel& s, uint64_t bytes) {
  if (bytes == 0) return 0;
  if (s.max_read_bytes == 0) return 1;
  return bytes / s.max_read_bytes + (bytes % s.max_read_bytes != 0 ? 1 : 0);
}

uint64_t storage_transfer_ns(const StorageModel& s, uint64_t bytes, uint64_t reads) {
  const uint64_t bps = s.read_bytes_per_s;
  // floor(bytes * 1e9 / bps) without overflow: whole seconds, then the
  // remainder r < bps in two exact steps (r * 1e5 < 1e19, r1 * 1e4 < 1e18).
  const uint64_t whole = bytes / bps, r = bytes % bps;
  const uint64_t a = r * 100000ull;
  const uint64_t q1 = a / bps, r1 = a % bps;
  const uint64_t frac_ns = q1 * 10000ull + (r1 * 10000ull) / bps;
  return reads * s.latency_ns + whole * 1000000000ull + frac_ns;
}

void device_init(Device* d, const StorageModel& storage, uint64_t ram_limit) {
  *d = Device{storage, ram_limit, 0, 0, 0, 0, 0};
}

void device_set_limit(Device* d, uint64_t ram_limit) { d->ram_limit = ram_limit; }

Status device_read(Device* d, uint64_t bytes, Transfer* out, Message* msg) {
  if (bytes > d->ram_limit || d->resident > d->ram_limit - bytes) {
    return fail(msg, Status::Budget, "RAM limit exceeded: reading %llu bytes with %llu resident needs %llu, limit %llu",
                (unsigned long long)bytes, (unsigned long long)d->resident,
                (unsigned long long)(d->resident + bytes), (unsigned long long)d->ram_limit);
  }
  Transfer t{bytes, storage_reads(d->storage, bytes), 0};
  t.ns = storage_transfer_ns(d->storage, bytes, t.reads);
  d->resident += bytes;
  d->bytes_read += bytes;
  d->reads += t.reads;
  d->transfer_ns += t.ns;
  if (out != nullptr) *out = t;
  return Status::Ok;
}

Status device_drop(Device* d, uint64_t bytes, Message* msg) {
  if (bytes > d->resident) {
    return fail(msg, Status::InvalidArgument, "cannot drop %llu bytes: only %llu resident",
                (unsigned long long)bytes, (unsigned long long)d->resident);
  }
  d->resident -= bytes;
  d->bytes_dropped += bytes;
  return Status::Ok;
}

Status device_check(const Device* d, Message* msg) {
  if (d->resident > d->ram_limit) {
    return fail(msg, Status::Budget, "RAM limit exceeded: %llu weight bytes resident, limit %llu",
                (unsigned long long)d->resident, (unsigned long long)d->ram_limit);
  }
  return Status::Ok;
}

}  // namespace sim
}  // namespace stk

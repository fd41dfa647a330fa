// ports/sim: the storage time model and the RAM limit of the simulated device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "ports/sim/sim_storage.h"

namespace stk::sim {
namespace {

TEST(SimStorage, PresetsCarryTheirDocumentedFigures) {
  uint32_t n = 0;
  const StorageModel* all = storage_presets(&n);
  ASSERT_EQ(n, 4u);
  for (uint32_t i = 0; i < n; ++i) {
    EXPECT_EQ(storage_preset(all[i].name), &all[i]);
    EXPECT_GT(std::strlen(all[i].basis), 40u) << all[i].name << " needs its reasons";
    EXPECT_EQ(storage_model_check(all[i], nullptr), Status::Ok);
  }
  EXPECT_EQ(storage_preset("nvme")->read_bytes_per_s, 2000000000u);
  EXPECT_EQ(storage_preset("nvme")->latency_ns, 80000u);
  EXPECT_EQ(storage_preset("emmc")->read_bytes_per_s, 250000000u);
  EXPECT_EQ(storage_preset("sdcard")->latency_ns, 700000u);
  EXPECT_EQ(storage_preset("spi-flash")->max_read_bytes, 0u);
  EXPECT_EQ(storage_preset("floppy"), nullptr);
  EXPECT_EQ(storage_preset(nullptr), nullptr);
}

TEST(SimStorage, ReadsSplitAtTheRequestLimit) {
  const StorageModel s{"t", 1000, 10, 4096, ""};
  EXPECT_EQ(storage_reads(s, 0), 0u);
  EXPECT_EQ(storage_reads(s, 1), 1u);
  EXPECT_EQ(storage_reads(s, 4096), 1u);
  EXPECT_EQ(storage_reads(s, 4097), 2u);
  EXPECT_EQ(storage_reads(s, 3 * 4096), 3u);
  const StorageModel unlimited{"u", 1000, 10, 0, ""};
  EXPECT_EQ(storage_reads(unlimited, 1ull << 40), 1u);
}

TEST(SimStorage, TimeIsBytesOverBandwidthPlusLatencyPerRead) {
  // sdcard: 1,000,000 bytes = 2 requests of <= 512 KiB; 1e6 / 40e6 s = 25 ms; 2 x 0.7 ms.
  const StorageModel& sd = *storage_preset("sdcard");
  EXPECT_EQ(storage_reads(sd, 1000000), 2u);
  EXPECT_EQ(storage_transfer_ns(sd, 1000000, 2), 25000000u + 1400000u);
  // nvme: 128 KiB = 1 request; 131072 / 2e9 s = 65536 ns.
  EXPECT_EQ(storage_transfer_ns(*storage_preset("nvme"), 131072, 1), 65536u + 80000u);
  // Rounded down to whole nanoseconds: 1 byte at 3 B/s.
  const StorageModel slow{"s", 3, 0, 0, ""};
  EXPECT_EQ(storage_transfer_ns(slow, 1, 1), 333333333u);
  EXPECT_EQ(storage_transfer_ns(slow, 4, 1), 1333333333u);
  // Large and awkward figures against long double arithmetic.
  const StorageModel odd{"o", 99999999977ull, 1234, 0, ""};
  for (uint64_t bytes : {1ull, 999ull, 123456789012ull, 99999999976ull, 5000000000000ull}) {
    const long double want = std::floor((long double)bytes * 1e9L / 99999999977.0L) + 7 * 1234.0L;
    EXPECT_EQ((long double)storage_transfer_ns(odd, bytes, 7), want) << bytes;
  }
  const StorageModel zero{"z", 0, 0, 0, ""};
  char buf[128];
  Message m{buf, sizeof buf};
  EXPECT_EQ(storage_model_check(zero, &m), Status::InvalidArgument);
  EXPECT_NE(std::string(buf).find("bandwidth 0"), std::string::npos);
}

TEST(SimStorage, DeviceEnforcesItsRamLimit) {
  const StorageModel s{"t", 1000000, 100, 1000, ""};
  Device d;
  device_init(&d, s, 5000);
  char buf[160];
  Message m{buf, sizeof buf};
  Transfer t{};
  ASSERT_EQ(device_read(&d, 3000, &t, &m), Status::Ok);
  EXPECT_EQ(t.bytes, 3000u);
  EXPECT_EQ(t.reads, 3u);
  EXPECT_EQ(t.ns, 3 * 100u + 3000000u);
  EXPECT_EQ(device_read(&d, 2001, &t, &m), Status::Budget);
  EXPECT_STREQ(buf, "RAM limit exceeded: reading 2001 bytes with 3000 resident needs 5001, limit 5000");
  EXPECT_EQ(d.resident, 3000u) << "a refused read changes nothing";
  EXPECT_EQ(d.bytes_read, 3000u);
  ASSERT_EQ(device_read(&d, 2000, &t, &m), Status::Ok);
  // The OS takes memory away: the device is over its limit until weights are dropped.
  device_set_limit(&d, 1500);
  EXPECT_EQ(device_check(&d, &m), Status::Budget);
  EXPECT_STREQ(buf, "RAM limit exceeded: 5000 weight bytes resident, limit 1500");
  EXPECT_EQ(device_drop(&d, 6000, &m), Status::InvalidArgument);
  ASSERT_EQ(device_drop(&d, 3600, &m), Status::Ok);
  EXPECT_EQ(device_check(&d, &m), Status::Ok);
  EXPECT_EQ(d.resident, 1400u);
  EXPECT_EQ(d.bytes_read, 5000u);
  EXPECT_EQ(d.reads, 5u);
  EXPECT_EQ(d.bytes_dropped, 3600u);
  EXPECT_EQ(d.transfer_ns, 5 * 100u + 5000000u);
}

}  // namespace
}  // namespace stk::sim

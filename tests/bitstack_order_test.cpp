// BitStack load orders (tools/bitstack_pack.h): "nll", the paper's measure,
// appends in each round the blocks whose calibration-NLL drop per byte is
// largest. At the budget its first round fills, its prefix must then score
// the calibration text at least as well as the prefix that any other order
// of the same blocks fits in those bytes. And whatever the order, the file
// is a valid prefix order (every first block first, each tensor's blocks in
// their own order).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/bitstack_fixture.h"
#include "tests/test_support.h"
#include "tools/bitstack_pack.h"
#include "tools/memory_model.h"
#include "tools/story_ppl.h"

namespace stk::test {
namespace {

constexpr uint32_t kTensors = 35;  // stories260K: 5 layers x 7 matrices

// The same decomposition (2 blocks per matrix, fitted to the weights, which
// keeps the pack to seconds), ordered by `order`, calibrated on 8 stories.
std::vector<uint8_t> pack(const std::string& order) {
  host::HostModel hm = host::import_llama2c(data_path("stories260K.bin"));
  auto tok = host::tokenizer_section_from_llama2c(host::read_file(data_path("tok512.bin")), hm.config.vocab_size,
                                                  "tok512.bin");
  host::BitStackPackOptions o;
  o.iters = 2;
  o.output_fit = false;
  o.order = order;
  o.calib = host::story_range(dev_stories(), 0, 8);
  return host::serialize_stk(host::pack_bitstack(hm, tok, o));
}

std::vector<stk_block_info> blocks(stk_model* m) {
  stk_budget_info info = STK_BUDGET_INFO_INIT;
  stk_message msg{};
  EXPECT_EQ(stk_model_budget_info(m, &info, &msg), STK_OK) << msg.text;
  std::vector<stk_block_info> out(info.n_blocks, STK_BLOCK_INFO_INIT);
  for (uint32_t k = 0; k < info.n_blocks; ++k) EXPECT_EQ(stk_model_block_info(m, k, &out[k], &msg), STK_OK) << msg.text;
  return out;
}

// Mean NLL of the calibration stories with the model at `budget`.
double calibration_nll(const host::MemoryModel& m, uint64_t budget) {
  host::MemorySession s(m, 2, 64, 0, budget);
  return host::score_stories(m.get(), s.get(), host::story_range(dev_stories(), 0, 8)).mean_nll();
}

TEST(BitStackOrder, NllOrdersFirstRoundBestOnItsCalibrationText) {
  if (kEmulationSizes) GTEST_SKIP() << "packer-side scoring, seconds on the host and many minutes under qemu";
  const host::MemoryModel nll(pack("nll"));
  const std::vector<stk_block_info> order = blocks(nll.get());
  ASSERT_EQ(order.size(), 2 * kTensors);
  std::vector<uint32_t> seen(kTensors * 16, 0);
  for (uint32_t k = 0; k < order.size(); ++k) {
    if (k < kTensors) EXPECT_EQ(order[k].index, 0u) << "block " << k;
    EXPECT_EQ(order[k].index, seen[order[k].layer * 16 + order[k].role]++) << "each tensor's blocks stay in order";
  }
  // The first round appends a quarter of the tensors' second blocks.
  const uint64_t round1 = order[kTensors + kTensors / 4 - 1].budget_through;
  const double nll_at = calibration_nll(nll, round1);
  for (const char* other : {"uniform", "gain"}) {
    const host::MemoryModel m(pack(other));
    EXPECT_LE(nll_at, calibration_nll(m, round1)) << other;
  }
  // And the round did lower it.
  EXPECT_LT(nll_at, calibration_nll(nll, order[kTensors - 1].budget_through));
}

}  // namespace
}  // namespace stk::test

// Host buffers in 2 MiB pages (tools/page_memory.h), which stk bench puts its
// models in: the alignment and size they promise, and a model in them gives
// the same logits as one in ordinary pages.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/test_support.h"
#include "tools/memory_model.h"
#include "tools/page_memory.h"

namespace stk::test {
namespace {

TEST(PageMemory, HugePageBuffersAre2MiBAlignedAndHoldTheWholeRequest) {
  for (const size_t bytes : {size_t(1), size_t(2) << 20, (size_t(3) << 20) + 1}) {
    void* p = host::alloc_pages(bytes, host::PageSize::Huge);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % (uintptr_t(2) << 20), 0u) << bytes;
    std::memset(p, 0xA5, bytes);  // out of bounds would be a fault (or an ASan report)
    EXPECT_EQ(static_cast<unsigned char*>(p)[bytes - 1], 0xA5);
    std::free(p);
  }
  void* q = host::alloc_pages(100, host::PageSize::Small);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % 64, 0u);
  std::free(q);
}

TEST(PageMemory, ModelInHugePagesGivesTheLogitsOfOneInSmallPages) {
  const std::vector<uint8_t> file = pack_file("stories260K.bin", WeightFormat::Q8);
  const host::MemoryModel small(file, host::PageSize::Small), huge(file, host::PageSize::Huge);
  std::vector<std::vector<float>> logits[2];
  const host::MemoryModel* models[2] = {&small, &huge};
  for (int k = 0; k < 2; ++k) {
    const host::MemorySession s(*models[k], 1, 1);
    const uint32_t vocab = models[k]->info().vocab_size;
    int32_t token = models[k]->info().bos_token;
    for (int step = 0; step < 16; ++step) {
      stk_message m{};
      ASSERT_EQ(stk_session_eval(s.get(), &token, 1, nullptr, &m), STK_OK) << m.text;
      const float* l = stk_session_logits(s.get());
      logits[k].emplace_back(l, l + vocab);
      token = int32_t(1 + step * 7 % (vocab - 1));  // a fixed, varied token sequence
    }
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  for (size_t i = 0; i < logits[0].size(); ++i) EXPECT_EQ(logits[0][i], logits[1][i]) << "step " << i;
}

}  // namespace
}  // namespace stk::test

// BitStack products shared among threads. The forward pass cuts a product's
// rows into chunks for the thread pool, and every BitStack kernel call
// prepares its own activations for its rows (the VBMI kernel: tables of
// subset sums), so results must not depend on the cut. stories260K's products
// are too small to be shared out at all, so this uses a random-weight BitStack
// model of the stories15M shape (bench/synth_bitstack.h) and checks that 1, 2
// and 3 threads give the same logits, bit for bit, for a batch and for single
// tokens, and that none of it allocates.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "bench/synth_bitstack.h"
#include "c_api/stackrt.h"
#include "tests/alloc_counter.h"
#include "tests/test_support.h"
#include "tools/stk_writer.h"

namespace stk::test {
namespace {

// Logits after a 5-token batch, then after each of 4 single tokens.
std::vector<float> run(stk_model* model, uint32_t threads, long* allocations) {
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.n_threads = threads;
  cfg.max_batch = 8;
  cfg.context_length = 16;
  stk_message m{};
  size_t bytes = 0;
  EXPECT_EQ(stk_session_arena_size(model, &cfg, &bytes, &m), STK_OK) << m.text;
  std::vector<uint8_t> arena(bytes);
  stk_session* s = nullptr;
  EXPECT_EQ(stk_session_init(model, &cfg, arena.data(), bytes, &s, &m), STK_OK) << m.text;
  const uint32_t vocab = 32000;
  std::vector<float> out(5 * size_t(vocab));
  const int32_t batch[5] = {1, 403, 2948, 29889, 17};
  const int32_t singles[4] = {263, 7, 12000, 31999};
  CountedWindow window;
  EXPECT_EQ(stk_session_eval(s, batch, 5, nullptr, &m), STK_OK) << m.text;
  std::memcpy(out.data(), stk_session_logits(s), vocab * sizeof(float));
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(stk_session_eval(s, &singles[i], 1, nullptr, &m), STK_OK) << m.text;
    std::memcpy(out.data() + size_t(i + 1) * vocab, stk_session_logits(s), vocab * sizeof(float));
  }
  *allocations = window.stop();
  stk_session_free(s);
  return out;
}

TEST(BitStackThreads, SameLogitsForOneTwoAndThreeThreads) {
  const bench::SynthBitStack synth = bench::synth_bitstack(bench::shape_by_name("stories15M"), 16, 3);
  const ModelImage img = to_image(host::serialize_stk(synth.model));
  stk_model* model = nullptr;
  stk_message m{};
  ASSERT_EQ(stk_model_open_memory(img.bytes.get(), img.size, nullptr, &model, &m), STK_OK) << m.text;
  long a1 = -1, a2 = -1, a3 = -1;
  const std::vector<float> one = run(model, 1, &a1);
  const std::vector<float> two = run(model, 2, &a2);
  const std::vector<float> three = run(model, 3, &a3);
  stk_model_close(model);
  float spread = 0;
  for (float v : one) spread = std::max(spread, std::fabs(v - one[0]));
  EXPECT_GT(spread, 0.0f) << "the logits carry no signal";
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(one.data(), three.data(), one.size() * sizeof(float)), 0);
#if !defined(STK_SANITIZER_OWNS_MALLOC)
  EXPECT_EQ(a1, 0);
  EXPECT_EQ(a2, 0);
  EXPECT_EQ(a3, 0);
#endif
}

}  // namespace
}  // namespace stk::test

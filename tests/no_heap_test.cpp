// Proves the runtime's central promise: from the moment stk_session_init
// returns until stk_session_free, nothing calls the allocator, including
// while generating with sampling, batched scoring and several threads.
//
// This binary replaces malloc/calloc/realloc/free and the global operator
// new/delete with counting versions that forward to glibc's own allocator.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "tests/alloc_counter.h"
#include "tests/test_support.h"


namespace stk::test {
namespace {

// The interposition itself must work, or a zero below would prove nothing.
TEST(NoHeap, CounterSeesAllocations) {
#if defined(STK_SANITIZER_OWNS_MALLOC)
  GTEST_SKIP() << "a sanitizer owns malloc in this build";
#endif
  CountedWindow w;
  void* volatile p = std::malloc(16);
  std::free(p);
  int* volatile q = new int(3);
  delete q;
  EXPECT_EQ(w.stop(), 4);
}

TEST(NoHeap, NoAllocationBetweenInitAndFreeWhileGenerating200Tokens) {
#if defined(STK_SANITIZER_OWNS_MALLOC)
  GTEST_SKIP() << "a sanitizer owns malloc in this build";
#endif
  for (WeightFormat format : {WeightFormat::F32, WeightFormat::Q8}) {
    for (uint32_t threads : {1u, 2u}) {
      const ModelImage& img = stories260k(format);
      stk_model* model = nullptr;
      ASSERT_EQ(stk_model_open_memory(img.bytes.get(), img.size, nullptr, &model, nullptr), STK_OK);
      stk_session_config cfg = STK_SESSION_CONFIG_INIT;
      cfg.n_threads = threads;
      cfg.max_batch = 32;
      size_t bytes = 0;
      ASSERT_EQ(stk_session_arena_size(model, &cfg, &bytes, nullptr), STK_OK);
      std::vector<uint8_t> arena(bytes);
      std::vector<float> logits(40 * 512);
      std::string text;
      text.reserve(8192);
      stk_session* s = nullptr;
      ASSERT_EQ(stk_session_init(model, &cfg, arena.data(), arena.size(), &s, nullptr), STK_OK);

      CountedWindow w;
      stk_sampler_config sc = STK_SAMPLER_CONFIG_INIT;
      sc.temperature = 0.8f;
      sc.top_p = 0.9f;  // the top-p path sorts: it must sort in the arena
      sc.seed = 42;
      stk_generate_stats stats = STK_GENERATE_STATS_INIT;
      stk_status gen = stk_generate(s, "Once upon a time", 200, &sc, collect_printable, &text, &stats, nullptr);
      stk_session_reset(s);
      int32_t toks[40];
      for (int i = 0; i < 40; ++i) toks[i] = 3 + (i * 37) % 500;
      stk_status ev = stk_session_eval(s, toks, 40, logits.data(), nullptr);  // batched scoring path
      int32_t next = -1;
      stk_status sm = stk_session_sample(s, &next, nullptr);
      long calls = w.stop();

      stk_session_free(s);
      stk_model_close(model);
      EXPECT_EQ(gen, STK_OK);
      EXPECT_EQ(ev, STK_OK);
      EXPECT_EQ(sm, STK_OK);
      // 200 positions: the prompt's, then one per sampled token except the
      // last, which is printed but never evaluated (as in llama2.c).
      EXPECT_EQ(stats.generated_tokens, 200u - stats.prompt_tokens + 1) << "generation ended early: " << text;
      EXPECT_EQ(calls, 0) << "allocator calls during generation, format " << int(format) << ", threads " << threads;
    }
  }
}

}  // namespace
}  // namespace stk::test

// Stories sampled from the dense model for distillation
// (tools/teacher_samples.h): reproducible for any thread count, well formed,
// and drawn from the model's own distribution at temperature 1.
#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"
#include "tools/distill.h"
#include "tools/llama2c_import.h"
#include "tools/pack.h"
#include "tools/teacher_samples.h"

namespace {

using stk::host::HostModel;
using stk::host::PackedModel;

struct Stories260K {
  HostModel model = stk::host::import_llama2c(stk::test::data_path("stories260K.bin"));
  PackedModel f32 = stk::host::pack_uniform(
      model,
      stk::host::tokenizer_section_from_llama2c(stk::host::read_file(stk::test::data_path("tok512.bin")),
                                                model.config.vocab_size, "tok512.bin"),
      stk::WeightFormat::F32);
};

TEST(TeacherSamples, SameStoriesForAnyThreadCountAndWellFormed) {
  Stories260K s;
  const auto one = stk::host::sample_stories(s.f32, 5, 7, 1);
  const auto two = stk::host::sample_stories(s.f32, 5, 7, 2);
  ASSERT_EQ(one.size(), 5u);
  EXPECT_EQ(one, two);
  const int32_t bos = 1, eos = 2;  // llama2.c's tokenizer
  for (const auto& t : one) {
    ASSERT_GE(t.size(), 2u);
    EXPECT_LE(t.size(), s.model.config.seq_len);
    EXPECT_EQ(t[0], bos);
    for (size_t i = 1; i < t.size(); ++i) {
      EXPECT_NE(t[i], bos);
      EXPECT_NE(t[i], eos);
      EXPECT_GE(t[i], 0);
      EXPECT_LT(t[i], int32_t(s.model.config.vocab_size));
    }
  }
  EXPECT_NE(one[0], one[1]);  // each story its own seed
  EXPECT_NE(stk::host::sample_stories(s.f32, 1, 8, 1)[0], one[0]);
}

// For tokens drawn from the model's distribution p, the expected NLL of the
// drawn token equals the entropy of p. A sampler that sharpens (temperature
// below 1, greedy, top-p) draws likelier tokens and its NLL falls below the
// entropy; one that flattens rises above it.
TEST(TeacherSamples, DrawnAtTemperatureOne) {
  Stories260K s;
  const auto stories = stk::host::sample_stories(s.f32, 24, 1, 2);
  double nll = 0, entropy = 0;
  size_t n = 0;
  const size_t V = s.model.config.vocab_size;
  for (const auto& t : stories) {
    const std::vector<float> logp = stk::host::model_log_probs(s.model, t);
    for (size_t i = 0; i + 1 < t.size(); ++i) {
      const float* lp = logp.data() + i * V;
      nll -= lp[t[i + 1]];
      for (size_t v = 0; v < V; ++v) entropy -= std::exp(double(lp[v])) * lp[v];
      ++n;
    }
  }
  ASSERT_GT(n, 1000u);
  nll /= double(n);
  entropy /= double(n);
  // The standard error of the mean difference is about 0.03 nats here.
  EXPECT_NEAR(nll, entropy, 0.1) << "mean NLL " << nll << ", mean entropy " << entropy << " over " << n << " tokens";
}

}  // namespace

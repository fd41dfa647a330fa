// Sampler tests. Expected random draws were computed separately from the
// published xorshift64* definition (state ^= state>>12; ^= state<<25;
// ^= state>>27; u32 = (state * 0x2545F4914F6CDD1D) >> 32; f = (u32>>8)/2^24),
// not by running this code.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace stk {
namespace {

// With 256 equal logits every probability is exactly 1/256 and the running
// sum is exact, so the sampled index is the top 8 of the coin's 24 bits.
constexpr uint32_t kUniformN = 256;
const std::vector<int32_t> kSeed42Top8 = {86,  200, 202, 241, 195, 213, 52, 112, 77,  172,
                                          108, 87,  224, 48,  18,  156, 83, 79,  255, 84};
const std::vector<int32_t> kZeroSeedTop8 = {13, 84,  168, 125, 144, 157, 213, 103, 135, 210,
                                            0,  188, 38,  236, 19,  84,  37,  2,   218, 60};

std::vector<int32_t> draw_uniform(Sampler* s, size_t count) {
  std::vector<int32_t> out;
  std::vector<float> logits(kUniformN);
  for (size_t i = 0; i < count; ++i) {
    std::fill(logits.begin(), logits.end(), 0.25f);
    out.push_back(sampler_sample(s, logits.data()));
  }
  return out;
}

std::vector<double> softmax_ref(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  double mx = -1e300;
  for (float l : logits) mx = std::max(mx, l / temperature);
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += (p[i] = std::exp(logits[i] / temperature - mx));
  for (double& x : p) x /= sum;
  return p;
}

TEST(Sampler, GreedyTakesFirstMaximumAndDrawsNothing) {
  Sampler s;
  sampler_init(&s, 5, 0.0f, 0.9f, 42, nullptr);
  float logits[5] = {1.f, 5.f, 3.f, 5.f, -2.f};
  EXPECT_EQ(sampler_sample(&s, logits), 1);
  EXPECT_EQ(s.rng_state, 42u);
  EXPECT_EQ(logits[1], 5.f);  // greedy leaves the logits alone
  for (float t : {-1.0f, std::numeric_limits<float>::quiet_NaN()}) {
    sampler_init(&s, 5, t, 0.0f, 42, nullptr);
    EXPECT_EQ(sampler_sample(&s, logits), 1);
  }
  float neg[3] = {-3.f, -1.f, -2.f};
  sampler_init(&s, 3, 0.0f, 0.0f, 1, nullptr);
  EXPECT_EQ(sampler_sample(&s, neg), 1);
  float tie[4] = {7.f, 7.f, 7.f, 7.f};
  EXPECT_EQ(sampler_sample(&s, tie), 0);
}

TEST(Sampler, DrawsMatchXorshiftReference) {
  Sampler s;
  sampler_init(&s, kUniformN, 1.0f, 0.0f, 42, nullptr);
  EXPECT_EQ(draw_uniform(&s, kSeed42Top8.size()), kSeed42Top8);
  // topp >= 1 and topp < 0 are plain multinomial sampling too.
  for (float topp : {1.0f, 1.5f, -0.5f}) {
    sampler_init(&s, kUniformN, 1.0f, topp, 42, nullptr);
    EXPECT_EQ(draw_uniform(&s, kSeed42Top8.size()), kSeed42Top8) << topp;
  }
}

TEST(Sampler, SeedZeroUsesDocumentedConstant) {
  Sampler s;
  sampler_init(&s, kUniformN, 1.0f, 0.0f, 0, nullptr);
  EXPECT_EQ(s.rng_state, kSamplerZeroSeedState);
  EXPECT_NE(s.rng_state, 0u);
  EXPECT_EQ(draw_uniform(&s, kZeroSeedTop8.size()), kZeroSeedTop8);
}

TEST(Sampler, SameSeedSameSequenceOtherSeedDiffers) {
  ProbIndex scratch_a[kUniformN], scratch_b[kUniformN];
  Sampler a, b, c;
  sampler_init(&a, kUniformN, 0.8f, 0.9f, 1234, scratch_a);
  sampler_init(&b, kUniformN, 0.8f, 0.9f, 1234, scratch_b);
  sampler_init(&c, kUniformN, 0.8f, 0.9f, 1235, scratch_b);
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 2.f);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 200; ++i) {
    std::vector<float> l(kUniformN);
    for (float& x : l) x = nd(rng);
    std::vector<float> l2 = l, l3 = l;
    sa.push_back(sampler_sample(&a, l.data()));
    sb.push_back(sampler_sample(&b, l2.data()));
    sc.push_back(sampler_sample(&c, l3.data()));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(Sampler, TemperatureDistributionMatchesSoftmax) {
  const std::vector<float> base = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
  const float temperature = 0.8f;
  const std::vector<double> p = softmax_ref(base, temperature);
  Sampler s;
  sampler_init(&s, 5, temperature, 0.0f, 777, nullptr);
  const int n = 100000;
  std::vector<int> count(5, 0);
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = base;
    const int32_t t = sampler_sample(&s, l.data());
    ASSERT_GE(t, 0);
    ASSERT_LT(t, 5);
    ++count[static_cast<size_t>(t)];
  }
  for (size_t i = 0; i < 5; ++i) {
    // 5 standard deviations of a binomial proportion.
    const double tol = 5 * std::sqrt(p[i] * (1 - p[i]) / n);
    EXPECT_NEAR(static_cast<double>(count[i]) / n, p[i], tol) << i;
  }
}

TEST(Sampler, LogitsBecomeProbabilities) {
  std::vector<float> l = {0.3f, -1.2f, 2.0f, 0.0f};
  const std::vector<double> p = softmax_ref(l, 0.5);
  Sampler s;
  sampler_init(&s, 4, 0.5f, 0.0f, 5, nullptr);
  sampler_sample(&s, l.data());
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(l[i], p[i], 1e-6) << i;
}

TEST(Sampler, ToppStaysInNucleus) {
  // Probabilities 0.05 0.3 0.05 0.5 0.1: sorted 0.5 (id 3), 0.3 (id 1), ...
  // topp 0.7 -> cumulative 0.5, then 0.8 > 0.7: nucleus {3, 1}.
  const std::vector<float> base = {std::log(0.05f), std::log(0.3f), std::log(0.05f), std::log(0.5f),
                                   std::log(0.1f)};
  ProbIndex scratch[5];
  Sampler s;
  sampler_init(&s, 5, 1.0f, 0.7f, 99, scratch);
  const int n = 40000;
  int n3 = 0;
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = base;
    const int32_t t = sampler_sample(&s, l.data());
    ASSERT_TRUE(t == 3 || t == 1) << t;
    n3 += t == 3;
  }
  // Renormalised within the nucleus: 0.5 / 0.8.
  EXPECT_NEAR(static_cast<double>(n3) / n, 0.625, 0.015);

  // topp 0.4: the top token alone already exceeds it.
  sampler_init(&s, 5, 1.0f, 0.4f, 99, scratch);
  for (int i = 0; i < 1000; ++i) {
    std::vector<float> l = base;
    ASSERT_EQ(sampler_sample(&s, l.data()), 3);
  }
}

TEST(Sampler, ToppNucleusOnRandomLogits) {
  const uint32_t V = 512;
  std::vector<ProbIndex> scratch(V);
  std::mt19937 rng(31);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int round = 0; round < 50; ++round) {
    std::vector<float> base(V);
    for (float& x : base) x = nd(rng);
    const float topp = 0.5f + 0.45f * static_cast<float>(round) / 50.f;
    const std::vector<double> p = softmax_ref(base, 1.0);
    std::vector<uint32_t> order(V);
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return p[a] > p[b]; });
    // Smallest prefix whose mass exceeds topp; skip rounds too close to call
    // in float arithmetic.
    double cum = 0;
    size_t k = 0;
    while (k < V && cum <= topp) cum += p[order[k++]];
    if (std::fabs(cum - topp) < 1e-4 || std::fabs(cum - p[order[k - 1]] - topp) < 1e-4) continue;
    std::vector<bool> in(V, false);
    for (size_t i = 0; i < k; ++i) in[order[i]] = true;
    Sampler s;
    sampler_init(&s, V, 1.0f, topp, 1000 + static_cast<uint64_t>(round), scratch.data());
    for (int i = 0; i < 300; ++i) {
      std::vector<float> l = base;
      const int32_t t = sampler_sample(&s, l.data());
      ASSERT_GE(t, 0);
      ASSERT_LT(t, static_cast<int32_t>(V));
      ASSERT_TRUE(in[static_cast<size_t>(t)]) << "token " << t << " outside nucleus of " << k;
    }
  }
}

TEST(Sampler, ToppTiesBreakByLowerIndex) {
  // Probabilities 0.2 0.4 0.4; topp 0.3 keeps only the first of the tied
  // pair, which must be index 1 whatever the libc.
  ProbIndex scratch[3];
  Sampler s;
  sampler_init(&s, 3, 1.0f, 0.3f, 3, scratch);
  for (int i = 0; i < 500; ++i) {
    float l[3] = {0.0f, std::log(2.0f), std::log(2.0f)};
    ASSERT_EQ(sampler_sample(&s, l), 1);
  }
}

TEST(Sampler, ToppWhenCutoffExcludesEverything) {
  // n=2, equal probabilities, topp 0.3: the (1-topp)/(n-1) = 0.7 pre-filter
  // keeps nothing (llama2.c reads out of bounds here). The nucleus is the
  // first token by the tie order.
  ProbIndex scratch[2];
  Sampler s;
  sampler_init(&s, 2, 1.0f, 0.3f, 8, scratch);
  for (int i = 0; i < 200; ++i) {
    float l[2] = {1.0f, 1.0f};
    ASSERT_EQ(sampler_sample(&s, l), 0);
  }
  ProbIndex one[1];
  sampler_init(&s, 1, 1.0f, 0.5f, 8, one);
  float l1[1] = {3.0f};
  EXPECT_EQ(sampler_sample(&s, l1), 0);
}

TEST(Sampler, BadInputs) {
  Sampler s;
  sampler_init(nullptr, 4, 1.0f, 0.9f, 1, nullptr);  // must not crash
  float l[4] = {0, 1, 2, 3};
  EXPECT_EQ(sampler_sample(nullptr, l), -1);
  sampler_init(&s, 4, 1.0f, 0.9f, 1, nullptr);
  EXPECT_EQ(sampler_sample(&s, nullptr), -1);
  EXPECT_EQ(sampler_sample(&s, l), -1);  // top-p without scratch
  sampler_init(&s, 0, 1.0f, 0.0f, 1, nullptr);
  EXPECT_EQ(sampler_sample(&s, l), -1);
  // Non-finite logits give some in-range token, never a crash.
  ProbIndex scratch[4];
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float topp : {0.0f, 0.9f}) {
    sampler_init(&s, 4, 1.0f, topp, 1, scratch);
    float a[4] = {nan, nan, nan, nan};
    int32_t t = sampler_sample(&s, a);
    EXPECT_TRUE(t >= 0 && t < 4) << t;
    float b[4] = {inf, 0.f, inf, -inf};
    t = sampler_sample(&s, b);
    EXPECT_TRUE(t >= 0 && t < 4) << t;
  }
}

}  // namespace
}  // namespace stk

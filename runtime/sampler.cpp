#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace stk {
namespace {

// xorshift64* exactly as llama2.c random_u32(), so seeds reproduce its draws.
uint32_t random_u32(uint64_t* state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return static_cast<uint32_t>((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

// 24 random bits, so every value is exact in float and the result is < 1.
float random_f32(uint64_t* state) { return static_cast<float>(random_u32(state) >> 8) / 16777216.0f; }

int32_t argmax(const float* x, uint32_t n) {
  uint32_t best = 0;
  float best_v = x[0];
  for (uint32_t i = 1; i < n; ++i) {
    if (x[i] > best_v) {
      best = i;
      best_v = x[i];
    }
  }
  return static_cast<int32_t>(best);
}

// Same operation order as llama2.c so float results match bit for bit.
void softmax(float* x, uint32_t n) {
  float max_v = x[0];
  for (uint32_t i = 1; i < n; ++i) {
    if (x[i] > max_v) max_v = x[i];
  }
  float sum = 0.0f;
  for (uint32_t i = 0; i < n; ++i) {
    x[i] = expf(x[i] - max_v);
    sum += x[i];
  }
  for (uint32_t i = 0; i < n; ++i) x[i] /= sum;
}

int32_t sample_mult(const float* probs, uint32_t n, float coin) {
  float cdf = 0.0f;
  for (uint32_t i = 0; i < n; ++i) {
    cdf += probs[i];
    if (coin < cdf) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(n - 1);  // rounding left the total below coin
}

int32_t sample_topp(const float* probs, uint32_t n, float topp, ProbIndex* cand, float coin) {
  // A token below (1-topp)/(n-1) can only be in the nucleus if it is the top
  // token, and then every token is below it; so the filter is exact except
  // when it leaves nothing, where we fall back to all tokens.
  const float cutoff = (1.0f - topp) / static_cast<float>(n - 1);
  uint32_t n0 = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (probs[i] >= cutoff) cand[n0++] = ProbIndex{probs[i], static_cast<int32_t>(i)};
  }
  if (n0 == 0) {
    // NaN is left out because it would break the sort's ordering contract.
    for (uint32_t i = 0; i < n; ++i) {
      if (!std::isnan(probs[i])) cand[n0++] = ProbIndex{probs[i], static_cast<int32_t>(i)};
    }
    if (n0 == 0) return 0;
  }
  // A total order (ties by index) keeps results identical across libcs.
  std::sort(cand, cand + n0, [](const ProbIndex& a, const ProbIndex& b) {
    if (a.prob != b.prob) return a.prob > b.prob;
    return a.index < b.index;
  });
  float cumulative = 0.0f;
  uint32_t last = n0 - 1;  // if rounding keeps the sum <= topp, use everything
  for (uint32_t i = 0; i < n0; ++i) {
    cumulative += cand[i].prob;
    if (cumulative > topp) {
      last = i;
      break;
    }
  }
  const float r = coin * cumulative;
  float cdf = 0.0f;
  for (uint32_t i = 0; i <= last; ++i) {
    cdf += cand[i].prob;
    if (r < cdf) return cand[i].index;
  }
  return cand[last].index;
}

}  // namespace

void sampler_init(Sampler* s, uint32_t vocab_size, float temperature, float topp, uint64_t seed,
                  ProbIndex* scratch) {
  if (s == nullptr) return;
  s->vocab_size = vocab_size;
  s->temperature = temperature;
  s->topp = topp;
  s->rng_state = seed != 0 ? seed : kSamplerZeroSeedState;
  s->scratch = scratch;
}

int32_t sampler_sample(Sampler* s, float* logits) {
  if (s == nullptr || logits == nullptr || s->vocab_size == 0 || s->vocab_size > 0x7FFFFFFFu) return -1;
  const uint32_t n = s->vocab_size;
  if (!(s->temperature > 0.0f)) return argmax(logits, n);
  const bool use_topp = s->topp > 0.0f && s->topp < 1.0f;
  if (use_topp && s->scratch == nullptr) return -1;
  // A state of 0 only arises if the caller wrote it directly; it would make
  // every draw 0, so treat it like seed 0.
  if (s->rng_state == 0) s->rng_state = kSamplerZeroSeedState;
  for (uint32_t i = 0; i < n; ++i) logits[i] /= s->temperature;
  softmax(logits, n);
  const float coin = random_f32(&s->rng_state);
  if (!use_topp) return sample_mult(logits, n, coin);
  return sample_topp(logits, n, s->topp, s->scratch, coin);
}

}  // namespace stk

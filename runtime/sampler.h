// llama2.c-compatible next-token sampler: greedy argmax, temperature
// multinomial, or top-p (nucleus) sampling, driven by llama2.c's xorshift64*
// generator so a given seed reproduces llama2.c's draws.
//
// Deliberate differences from llama2.c, all where llama2.c is unspecified or
// undefined: top-p candidates are ordered by probability descending then index
// ascending (std::sort, not libc qsort), so equal probabilities pick the same
// token on every libc; when the (1-topp)/(n-1) pre-filter leaves no candidate
// (possible when topp < 1/n, where llama2.c reads out of bounds) all tokens
// are considered; NaN temperature means greedy and NaN top-p means plain
// multinomial.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk {

// Seed 0 would leave xorshift stuck at 0 forever, so it is replaced by this
// constant (the 64-bit golden ratio); every other seed is used unchanged.
constexpr uint64_t kSamplerZeroSeedState = 0x9E3779B97F4A7C15ull;

struct ProbIndex {
  float prob;
  int32_t index;
};

struct Sampler {
  uint32_t vocab_size;
  float temperature;  // <= 0 (or NaN): greedy argmax
  float topp;         // outside (0, 1) (or NaN): plain multinomial
  uint64_t rng_state;
  ProbIndex* scratch;  // vocab_size entries, caller-provided; needed for top-p only
};

// Fills *s; a null `s` is ignored. `scratch` may be null unless top-p is used.
void sampler_init(Sampler* s, uint32_t vocab_size, float temperature, float topp, uint64_t seed,
                  ProbIndex* scratch);

// Returns a token id in [0, vocab_size), or -1 when s or logits is null,
// vocab_size is 0 or above INT32_MAX, or top-p is active without scratch.
// Unless greedy, logits are overwritten with the probabilities (divided by
// the temperature, then softmax) and exactly one random number is drawn; the
// greedy path draws none, as in llama2.c.
int32_t sampler_sample(Sampler* s, float* logits);

}  // namespace stk

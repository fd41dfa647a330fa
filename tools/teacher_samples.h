// Stories written by the dense model itself, as extra distillation text
// (host tool code). Distillation matches the compressed model's next-token
// distributions to the dense model's; it needs inputs the dense model finds
// typical, not necessarily real text, and the calibration file is small (64
// stories by the quality protocol). Samples drawn from the dense model at
// temperature 1 are such inputs in any quantity, at the cost of running it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/host_model.h"
#include "tools/memory_model.h"
#include "tools/stk_writer.h"

namespace stk::host {

// `count` token sequences sampled from `dense` (a loadable, non-BitStack
// pack), each BOS first, then tokens drawn at temperature 1 until the context
// is full or the model samples BOS or EOS (the end of its story, not kept).
// Sample i uses sampler seed `seed + i`: the same arguments give the same
// sequences for any thread count.
std::vector<std::vector<int32_t>> sample_stories(const PackedModel& dense, uint32_t count, uint64_t seed,
                                                 uint32_t threads);
std::vector<std::vector<int32_t>> sample_stories(const MemoryModel& dense, uint32_t count, uint64_t seed,
                                                 uint32_t threads);

// The distillation text: the calibration stories tokenized, then `samples`
// stories sampled from `dense` (seed 1), both through one f32 pack of `dense`
// (so the model being packed need not be loadable yet: a BitStack pack has
// no blocks until after its distillation). Distillation holds back the last
// eighth of its sequences, so with samples at least an eighth of the whole
// it trains on every calibration story and judges epochs on samples.
std::vector<std::vector<int32_t>> distill_sequences(const HostModel& dense, const std::vector<uint8_t>& tokenizer_section,
                                                    const std::vector<std::string>& calib, uint32_t samples,
                                                    uint32_t threads);

}  // namespace stk::host

#include "tools/teacher_samples.h"

#include <algorithm>

#include "tools/distill.h"
#include "tools/handles.h"
#include "tools/memory_model.h"
#include "tools/pack.h"

namespace stk::host {

std::vector<std::vector<int32_t>> sample_stories(const PackedModel& dense, uint32_t count, uint64_t seed,
                                                 uint32_t threads) {
  return sample_stories(MemoryModel(serialize_stk(dense)), count, seed, threads);
}

std::vector<std::vector<int32_t>> sample_stories(const MemoryModel& mm, uint32_t count, uint64_t seed,
                                                 uint32_t threads) {
  const stk_model_info& info = mm.info();
  std::vector<std::vector<int32_t>> out(count);
  // One single-threaded session per worker: sampling is token by token, so
  // whole stories in parallel use the cores better than split matrix products.
  const uint32_t workers = std::max<uint32_t>(1, std::min(threads, count));
  parallel_for(workers, workers, [&](size_t w) {
    MemorySession ms(mm, 1, 1);
    stk_message m{};
    for (size_t i = w; i < count; i += workers) {
      stk_session_reset(ms.get());
      stk_sampler_config sc = STK_SAMPLER_CONFIG_INIT;
      sc.temperature = 1.0f;
      sc.seed = seed + i;
      check(stk_session_set_sampler(ms.get(), &sc, &m), m);
      std::vector<int32_t>& t = out[i];
      t.push_back(info.bos_token);
      while (t.size() < info.seq_len) {
        check(stk_session_eval(ms.get(), &t.back(), 1, nullptr, &m), m);
        int32_t next = 0;
        check(stk_session_sample(ms.get(), &next, &m), m);
        if (next == info.bos_token || next == info.eos_token) break;
        t.push_back(next);
      }
    }
  });
  return out;
}

std::vector<std::vector<int32_t>> distill_sequences(const HostModel& dense, const std::vector<uint8_t>& tokenizer_section,
                                                    const std::vector<std::string>& calib, uint32_t samples,
                                                    uint32_t threads) {
  const MemoryModel f32(serialize_stk(pack_uniform(dense, tokenizer_section, WeightFormat::F32)));
  std::vector<std::vector<int32_t>> seqs = tokenize_stories(f32, calib);
  if (samples > 0) {
    std::vector<std::vector<int32_t>> gen = sample_stories(f32, samples, 1, threads);
    seqs.insert(seqs.end(), std::make_move_iterator(gen.begin()), std::make_move_iterator(gen.end()));
  }
  return seqs;
}

}  // namespace stk::host

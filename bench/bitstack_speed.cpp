// stk_bitstack_bench: decode speed of a BitStack model at the weight budget
// of the Q4 model of the same shape, against that Q4 model (random weights;
// values do not change the speed). Usage: stk_bitstack_bench [shape] [threads] [rank]
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "bench/synth_model.h"
#include "runtime/bitstack_format.h"
#include "runtime/half.h"
#include "tools/bitstack_decompose.h"
#include "tools/handles.h"
#include "tools/memory_model.h"

using namespace stk;

namespace {

struct Rng {
  uint64_t s = 88172645463325252ull;
  uint64_t next() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  }
};

bool is_linear(TensorRole r) {
  return r == TensorRole::Wq || r == TensorRole::Wk || r == TensorRole::Wv || r == TensorRole::Wo ||
         r == TensorRole::W1 || r == TensorRole::W2 || r == TensorRole::W3;
}

// tok/s of single-token decode steps after a 1-token prompt.
double decode_speed(const std::vector<uint8_t>& image, uint32_t threads, uint64_t budget, uint64_t* weight_bytes) {
  host::MemoryModel mm(image);
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.n_threads = threads;
  cfg.context_length = 128;
  cfg.max_batch = 1;
  cfg.max_budget_bytes = budget;
  size_t bytes = 0;
  stk_message m{};
  host::check(stk_session_arena_size(mm.get(), &cfg, &bytes, &m), m);
  std::vector<uint8_t> arena(bytes);
  stk_session* s = nullptr;
  host::check(stk_session_init(mm.get(), &cfg, arena.data(), bytes, &s, &m), m);
  stk_budget_report r = STK_BUDGET_REPORT_INIT;
  host::check(stk_session_set_budget(s, budget ? budget : UINT64_MAX, &r, &m), m);
  *weight_bytes = r.weight_bytes;
  int32_t tok = 1;
  for (int i = 0; i < 2; ++i) host::check(stk_session_eval(s, &tok, 1, nullptr, &m), m);  // warm up
  // Process CPU time, not wall time: on a shared machine the wall clock
  // measures the neighbours (with one thread the two agree when idle).
  const int n = 24;
  timespec a0, a1;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a0);
  for (int i = 0; i < n; ++i) {
    tok = 1 + (i * 7919) % 30000;
    host::check(stk_session_eval(s, &tok, 1, nullptr, &m), m);
  }
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a1);
  const double sec = double(a1.tv_sec - a0.tv_sec) + 1e-9 * double(a1.tv_nsec - a0.tv_nsec);
  stk_session_free(s);
  return n / sec;
}

}  // namespace

int run(int argc, char** argv) {
  const std::string shape = argc > 1 ? argv[1] : "stories110M";
  const uint32_t threads = argc > 2 ? uint32_t(std::atoi(argv[2])) : 1;
  const uint32_t rank_override = argc > 3 ? uint32_t(std::atoi(argv[3])) : 0;  // 0 = the packer's default rule
  const uint32_t iters = 6;
  bench::ShapeSpec spec = bench::shape_by_name(shape);
  host::PackedModel q4 = bench::synth_model(spec, host::parse_format_spec("q4"), 256);
  std::vector<uint8_t> q4_image = host::serialize_stk(q4);
  uint64_t q4_bytes = 0;
  const double q4_speed = decode_speed(q4_image, threads, 0, &q4_bytes);

  // Same shape: embedding/classifier Q8 (the BitStack packer's default), every
  // linear layer `iters` random blocks at the default rank, uniform order.
  host::PackedModel bs = bench::synth_model(spec, host::parse_format_spec("q8"), 256);
  Rng rng;
  std::vector<std::vector<std::vector<uint8_t>>> blocks;
  for (host::PackedTensor& t : bs.tensors) {
    if (!is_linear(t.role)) continue;
    const uint32_t rank = rank_override ? rank_override : host::bitstack_default_rank(t.rows, t.cols);
    std::vector<std::vector<uint8_t>> tb;
    for (uint32_t b = 0; b < iters; ++b) {
      host::BitStackBlock blk;
      blk.rank = rank;
      blk.signs.resize(size_t(t.rows) * ((t.cols + 7) / 8));
      for (uint8_t& x : blk.signs) x = uint8_t(rng.next());
      blk.u.resize(size_t(rank) * t.rows);
      blk.v.resize(size_t(rank) * t.cols);
      for (uint16_t& x : blk.u) x = float_to_half(0.01f * float(rng.next() % 100) / 100.0f);
      for (uint16_t& x : blk.v) x = float_to_half(0.01f * float(rng.next() % 100) / 100.0f);
      tb.push_back(host::bitstack_encode_block(blk, t.layer, t.role, b, t.rows, t.cols));
    }
    blocks.push_back(std::move(tb));
    t.format = WeightFormat::BitStack;
    std::memset(t.params, 0, sizeof t.params);
    t.params[0] = iters;
    t.data.clear();
  }
  for (uint32_t b = 0; b < iters; ++b) {
    for (auto& tb : blocks) bs.bitstack_blocks.insert(bs.bitstack_blocks.end(), tb[b].begin(), tb[b].end());
  }
  blocks.clear();
  std::vector<uint8_t> bs_image = host::serialize_stk(bs);
  bs = host::PackedModel{};
  uint64_t bs_bytes = 0;
  const double bs_speed = decode_speed(bs_image, threads, q4_bytes, &bs_bytes);
  std::printf("{\"shape\": \"%s\", \"rank\": %u, \"threads\": %u, \"q4_weight_bytes\": %llu, \"q4_tok_s\": %.2f, "
              "\"bitstack_weight_bytes\": %llu, \"bitstack_tok_s\": %.2f, \"ratio\": %.3f}\n",
              shape.c_str(), rank_override, threads, (unsigned long long)q4_bytes, q4_speed, (unsigned long long)bs_bytes, bs_speed,
              bs_speed / q4_speed);
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0)) {
    std::printf("usage: stk_bitstack_bench [SHAPE [THREADS [RANK]]]\n"
                "Decode tok/s of a random-weight BitStack model at the weight budget of the Q4 model of the\n"
                "same shape, against that Q4 model. SHAPE: stories15M, stories110M (default) or tinyllama;\n"
                "THREADS default 1; RANK default: the packer's per-matrix rule.\n");
    return 0;
  }
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stk_bitstack_bench: %s\n", e.what());
    return 2;
  }
}

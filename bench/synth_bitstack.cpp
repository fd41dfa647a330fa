#include "bench/synth_bitstack.h"

#include <cstring>

#include "runtime/half.h"

namespace stk::bench {
namespace {

struct Rng {
  uint64_t s = 88172645463325252ull;
  uint64_t next() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  }
};

}  // namespace

SynthBitStack synth_bitstack(const ShapeSpec& s, uint32_t seq_len, uint32_t blocks) {
  SynthBitStack out;
  out.model = synth_model(s, host::parse_format_spec("q4k"), seq_len);
  Rng rng;
  std::vector<std::vector<std::vector<uint8_t>>> encoded;  // [matrix][block]
  for (host::PackedTensor& t : out.model.tensors) {
    if (!host::is_linear_role(t.role)) continue;
    MatrixBlocks m{t.rows, t.cols, {}};
    const uint32_t rank = host::bitstack_default_rank(t.rows, t.cols);
    std::vector<std::vector<uint8_t>> tb;
    for (uint32_t b = 0; b < blocks; ++b) {
      host::BitStackBlock blk;
      blk.rank = rank;
      blk.signs.resize(size_t(t.rows) * ((t.cols + 7) / 8));
      for (uint8_t& x : blk.signs) x = uint8_t(rng.next());
      blk.u.resize(size_t(rank) * t.rows);
      blk.v.resize(size_t(rank) * t.cols);
      for (uint16_t& x : blk.u) x = float_to_half(0.01f * float(rng.next() % 100) / 100.0f);
      for (uint16_t& x : blk.v) x = float_to_half(0.01f * float(rng.next() % 100) / 100.0f);
      tb.push_back(host::bitstack_encode_block(blk, t.layer, t.role, b, t.rows, t.cols));
      m.blocks.push_back(std::move(blk));
    }
    out.matrices.push_back(std::move(m));
    encoded.push_back(std::move(tb));
    t.format = WeightFormat::BitStack;
    std::memset(t.params, 0, sizeof t.params);
    t.params[0] = blocks;
    t.data.clear();
  }
  for (uint32_t b = 0; b < blocks; ++b) {
    for (auto& tb : encoded) out.model.bitstack_blocks.insert(out.model.bitstack_blocks.end(), tb[b].begin(), tb[b].end());
  }
  return out;
}

uint64_t total_weight_bytes(const host::PackedModel& m) {
  uint64_t b = 0;
  for (const host::PackedTensor& t : m.tensors) b += t.data.size();
  return b;
}

}  // namespace stk::bench

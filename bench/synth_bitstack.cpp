#include "bench/synth_bitstack.h"

#include <cstring>

#include "runtime/half.h"
#include "tools/bitstack_decompose.h"

namespace stk::bench {
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

}  // namespace

std::vector<MatrixBlocks> random_bitstack_blocks(const ShapeSpec& s, uint32_t blocks) {
  const host::PackedModel shape_only = synth_model(s, host::parse_format_spec("q4k"), 8);
  Rng rng;
  std::vector<MatrixBlocks> out;
  for (const host::PackedTensor& t : shape_only.tensors) {
    if (!is_linear(t.role)) continue;
    MatrixBlocks m{t.layer, t.role, t.rows, t.cols, {}};
    const uint32_t rank = host::bitstack_default_rank(t.rows, t.cols);
    for (uint32_t b = 0; b < blocks; ++b) {
      host::BitStackBlock blk;
      blk.rank = rank;
      blk.signs.resize(size_t(t.rows) * ((t.cols + 7) / 8));
      for (uint8_t& x : blk.signs) x = uint8_t(rng.next());
      blk.u.resize(size_t(rank) * t.rows);
      blk.v.resize(size_t(rank) * t.cols);
      for (uint16_t& x : blk.u) x = float_to_half(0.01f * float(rng.next() % 100) / 100.0f);
      for (uint16_t& x : blk.v) x = float_to_half(0.01f * float(rng.next() % 100) / 100.0f);
      m.blocks.push_back(std::move(blk));
    }
    out.push_back(std::move(m));
  }
  return out;
}

host::PackedModel synth_bitstack(const ShapeSpec& s, uint32_t seq_len, uint32_t blocks) {
  host::PackedModel m = synth_model(s, host::parse_format_spec("q4k"), seq_len);
  const std::vector<MatrixBlocks> random = random_bitstack_blocks(s, blocks);
  std::vector<std::vector<std::vector<uint8_t>>> encoded;  // [matrix][block]
  size_t i = 0;
  for (host::PackedTensor& t : m.tensors) {
    if (!is_linear(t.role)) continue;
    std::vector<std::vector<uint8_t>> tb;
    for (uint32_t b = 0; b < blocks; ++b) {
      tb.push_back(host::bitstack_encode_block(random[i].blocks[b], t.layer, t.role, b, t.rows, t.cols));
    }
    ++i;
    encoded.push_back(std::move(tb));
    t.format = WeightFormat::BitStack;
    std::memset(t.params, 0, sizeof t.params);
    t.params[0] = blocks;
    t.data.clear();
  }
  for (uint32_t b = 0; b < blocks; ++b) {
    for (auto& tb : encoded) m.bitstack_blocks.insert(m.bitstack_blocks.end(), tb[b].begin(), tb[b].end());
  }
  return m;
}

uint64_t total_weight_bytes(const host::PackedModel& m) {
  uint64_t b = 0;
  for (const host::PackedTensor& t : m.tensors) b += t.data.size();
  return b;
}

}  // namespace stk::bench

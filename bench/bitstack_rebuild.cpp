#include "bench/bitstack_rebuild.h"

#include <chrono>
#include <cstring>

#include "runtime/widest_isa.h"
#include "runtime/half.h"
#include "runtime/kernels/matmul.h"

namespace stk::bench {
namespace {

// The eight signs of a byte of sign bits as floats (bit set = +1).
struct SignTable {
  float v[256][8];
  SignTable() {
    for (uint32_t b = 0; b < 256; ++b) {
      for (uint32_t i = 0; i < 8; ++i) v[b][i] = (b >> i) & 1u ? 1.0f : -1.0f;
    }
  }
};

// out[c] += sign(c) * sum_k u[k] * v[k][c] for one row: the magnitude row as
// a sum of scaled factor rows, the signs expanded to floats by table, then one
// multiply-add. Plain loops over contiguous floats, compiled for the widest
// ISA present on x86 (cols a multiple of 8 here).
STK_WIDEST_ISA void accumulate_row(
    const float* u_r, const float* v, uint32_t rank, uint32_t cols, const uint8_t* sign_row, float* mag, float* sgn,
    float* out) {
  static const SignTable table;
  for (uint32_t c = 0; c < cols; c += 8) std::memcpy(sgn + c, table.v[sign_row[c / 8]], 32);
  for (uint32_t c = 0; c < cols; ++c) mag[c] = 0.0f;
  for (uint32_t k = 0; k < rank; ++k) {
    const float uk = u_r[k];
    const float* vk = v + size_t(k) * cols;
    for (uint32_t c = 0; c < cols; ++c) mag[c] += uk * vk[c];
  }
  for (uint32_t c = 0; c < cols; ++c) out[c] += sgn[c] * mag[c];
}

}  // namespace

std::vector<uint32_t> uniform_resident(size_t matrices, uint32_t total) {
  std::vector<uint32_t> r(matrices, uint32_t(total / matrices));
  for (size_t i = 0; i < total % matrices; ++i) ++r[i];
  return r;
}

double dense_rebuild_tok_s(const std::vector<MatrixBlocks>& matrices, const std::vector<uint32_t>& resident,
                           uint32_t tokens, const KernelSet& kernels) {
  // Factors in float once (a rebuild on every pass would convert them too;
  // leaving that out only favours this approach).
  struct Factors {
    std::vector<float> u_rows;  // [rows][rank]
    std::vector<float> v;       // [rank][cols]
  };
  std::vector<std::vector<Factors>> f(matrices.size());
  uint32_t max_rows = 0, max_cols = 0;
  for (size_t i = 0; i < matrices.size(); ++i) {
    const MatrixBlocks& m = matrices[i];
    max_rows = m.rows > max_rows ? m.rows : max_rows;
    max_cols = m.cols > max_cols ? m.cols : max_cols;
    for (uint32_t b = 0; b < resident[i]; ++b) {
      const host::BitStackBlock& blk = m.blocks[b];
      Factors fb;
      fb.u_rows.resize(size_t(m.rows) * blk.rank);
      fb.v.resize(size_t(blk.rank) * m.cols);
      for (uint32_t k = 0; k < blk.rank; ++k) {
        for (uint32_t r = 0; r < m.rows; ++r) fb.u_rows[size_t(r) * blk.rank + k] = half_to_float(blk.u[size_t(k) * m.rows + r]);
        for (uint32_t c = 0; c < m.cols; ++c) fb.v[size_t(k) * m.cols + c] = half_to_float(blk.v[size_t(k) * m.cols + c]);
      }
      f[i].push_back(std::move(fb));
    }
  }
  std::vector<float> w(size_t(max_rows) * max_cols), mag(max_cols), sgn(max_cols + 8), x(max_cols, 0.01f), y(max_rows);
  const MatmulFn f32 = kernels.get(WeightFormat::F32);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t t = 0; t < tokens; ++t) {
    for (size_t i = 0; i < matrices.size(); ++i) {
      const MatrixBlocks& m = matrices[i];
      const uint32_t stride = (m.cols + 7) / 8;
      std::memset(w.data(), 0, size_t(m.rows) * m.cols * sizeof(float));
      for (uint32_t b = 0; b < resident[i]; ++b) {
        const host::BitStackBlock& blk = m.blocks[b];
        for (uint32_t r = 0; r < m.rows; ++r) {
          accumulate_row(f[i][b].u_rows.data() + size_t(r) * blk.rank, f[i][b].v.data(), blk.rank, m.cols,
                         blk.signs.data() + size_t(r) * stride, mag.data(), sgn.data(), w.data() + size_t(r) * m.cols);
        }
      }
      const WeightView v{WeightFormat::F32, m.rows, m.cols, reinterpret_cast<const uint8_t*>(w.data()),
                         uint64_t(m.rows) * m.cols * 4, {0, 0, 0, 0}};
      const Activations a{x.data(), m.cols, 1, nullptr, nullptr, 0};
      f32(v, a, y.data(), m.rows, 0, m.rows);
    }
  }
  return tokens / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace stk::bench

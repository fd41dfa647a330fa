#include "tools/bitstack_decompose.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "runtime/bitstack_format.h"
#include "runtime/half.h"
#include "tools/svd.h"

namespace stk::host {

uint32_t bitstack_default_rank(uint32_t rows, uint32_t cols) {
  const uint64_t r = uint64_t(rows) * cols / (128ull * (uint64_t(rows) + cols));
  return uint32_t(std::clamp<uint64_t>(r, 1, 16));
}

std::vector<BitStackBlock> bitstack_decompose(const float* w, uint32_t rows, uint32_t cols, uint32_t iters,
                                              uint32_t rank, const double* col_weight) {
  if (rank == 0 || rank > kBitStackMaxRank || rank > std::min(rows, cols)) {
    throw std::invalid_argument("bitstack: rank " + std::to_string(rank) + " out of range");
  }
  const size_t nw = size_t(rows) * cols;
  const uint32_t stride = (cols + 7) / 8;
  std::vector<double> R(w, w + nw), mag(nw);
  std::vector<BitStackBlock> out;
  for (uint32_t it = 0; it < iters; ++it) {
    BitStackBlock b;
    b.rank = rank;
    b.signs.assign(size_t(rows) * stride, 0);
    double before = 0;
    for (size_t i = 0; i < nw; ++i) {
      before += R[i] * R[i] * (col_weight ? col_weight[i % cols] : 1.0);
      mag[i] = std::fabs(R[i]);
      if (R[i] >= 0) b.signs[(i / cols) * stride + (i % cols) / 8] |= uint8_t(1u << ((i % cols) % 8));
    }
    Svd s = svd_truncated(mag.data(), rows, cols, rank, 4, 1 + it);
    b.u.resize(size_t(rank) * rows);
    b.v.resize(size_t(rank) * cols);
    std::vector<float> uf(size_t(rank) * rows), vf(size_t(rank) * cols);
    for (uint32_t k = 0; k < rank; ++k) {
      // |R| >= 0, so the leading pair can be taken non-negative; fix the sign
      // of each pair so that u's sum is >= 0 (cosmetic, the product is unchanged).
      double su = 0;
      for (uint32_t i = 0; i < rows; ++i) su += s.u[size_t(k) * rows + i];
      const double sg = su < 0 ? -1.0 : 1.0, rs = std::sqrt(std::max(0.0, s.s[k]));
      for (uint32_t i = 0; i < rows; ++i) {
        b.u[size_t(k) * rows + i] = float_to_half(float(sg * rs * s.u[size_t(k) * rows + i]));
        uf[size_t(k) * rows + i] = half_to_float(b.u[size_t(k) * rows + i]);
      }
      for (uint32_t j = 0; j < cols; ++j) {
        b.v[size_t(k) * cols + j] = float_to_half(float(sg * rs * s.v[size_t(k) * cols + j]));
        vf[size_t(k) * cols + j] = half_to_float(b.v[size_t(k) * cols + j]);
      }
    }
    double after = 0;
    for (uint32_t r = 0; r < rows; ++r) {
      for (uint32_t c = 0; c < cols; ++c) {
        double m = 0;
        for (uint32_t k = 0; k < rank; ++k) m += double(uf[size_t(k) * rows + r]) * vf[size_t(k) * cols + c];
        const size_t i = size_t(r) * cols + c;
        const bool pos = (b.signs[size_t(r) * stride + c / 8] >> (c % 8)) & 1u;
        R[i] -= pos ? m : -m;
        after += R[i] * R[i] * (col_weight ? col_weight[c] : 1.0);
      }
    }
    b.residual_before = before;
    b.residual_after = after;
    out.push_back(std::move(b));
  }
  return out;
}

void bitstack_block_accumulate(const BitStackBlock& b, uint32_t rows, uint32_t cols, float* out) {
  const uint32_t stride = (cols + 7) / 8;
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t c = 0; c < cols; ++c) {
      float m = 0;
      for (uint32_t k = 0; k < b.rank; ++k) {
        m += half_to_float(b.u[size_t(k) * rows + r]) * half_to_float(b.v[size_t(k) * cols + c]);
      }
      const bool pos = (b.signs[size_t(r) * stride + c / 8] >> (c % 8)) & 1u;
      out[size_t(r) * cols + c] += pos ? m : -m;
    }
  }
}

std::vector<uint8_t> bitstack_encode_block(const BitStackBlock& b, uint32_t layer, TensorRole role, uint32_t index,
                                           uint32_t rows, uint32_t cols) {
  BitStackLayout lay{};
  if (!bitstack_layout(rows, cols, b.rank, &lay) || index > 65535) throw std::invalid_argument("bitstack: block too large");
  std::vector<uint8_t> out(lay.bytes, 0);
  BitStackBlockHeader h{};
  h.magic = kBitStackBlockMagic;
  h.layer = layer;
  h.role = uint16_t(role);
  h.index = uint16_t(index);
  h.rows = rows;
  h.cols = cols;
  h.rank = b.rank;
  h.kind = kBitStackKindLowRank;
  h.sign_row_bytes = lay.sign_row_bytes;
  h.u_offset = uint32_t(lay.u_offset);
  h.v_offset = uint32_t(lay.v_offset);
  h.bytes = lay.bytes;
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, b.signs.data(), b.signs.size());
  std::memcpy(out.data() + lay.u_offset, b.u.data(), b.u.size() * 2);
  std::memcpy(out.data() + lay.v_offset, b.v.data(), b.v.size() * 2);
  return out;
}

}  // namespace stk::host

// BitStack kernel, portable: y = sum_blocks sum_k u_k ⊙ (S (v_k ⊙ s ⊙ x)),
// computed on the packed sign bits and fp16 factors, never on a dense W.
//
// Columns go in tiles of 64. Per (token, block, rank, tile) the kernel forms
// z = v_k ⊙ s ⊙ x over the tile and 16 nibble tables lut[g][m] = sum of z
// over the columns of group g whose bit is set in m; a row's signed sum over
// the tile is then 2 * (16 table lookups) - sum(z). Every row is computed by
// the same sequence whatever row range the call covers. Sign planes may be
// row-major or in 16-row groups (runtime/bitstack_signs16.h).
#include <cstring>

#include "runtime/bitstack_format.h"
#include "runtime/bitstack_signs16.h"
#include "runtime/block_pool.h"
#include "runtime/half.h"
#include "runtime/kernels/kernels.h"

namespace stk {

void matmul_bitstack_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                            uint32_t r1) {
  constexpr uint32_t kTile = 64;
  const BitStackTensor& T = *reinterpret_cast<const BitStackTensor*>(w.data);
  const uint32_t rows = w.rows, cols = w.cols;
  float z[kTile];
  float lut[kTile / 4][16];
  for (uint32_t t = 0; t < a.n; ++t) {
    const float* x = a.x + size_t(t) * a.ldx;
    float* yt = y + size_t(t) * ldy;
    for (uint32_t r = r0; r < r1; ++r) yt[r] = 0.0f;
    for (uint32_t b = 0; b < T.n_loaded; ++b) {
      const BitStackBlockView bv = bitstack_block_view(T, b);
      const uint8_t* signs = bv.signs;
      const uint8_t* U = bv.U;
      const uint8_t* V = bv.V;
      for (uint32_t k = 0; k < bv.rank; ++k) {
        for (uint32_t c0 = 0; c0 < cols; c0 += kTile) {
          const uint32_t n = cols - c0 < kTile ? cols - c0 : kTile;
          float total = 0.0f;
          for (uint32_t i = 0; i < kTile; ++i) {
            float v = 0.0f;
            if (i < n) {
              uint16_t hv;
              std::memcpy(&hv, V + (size_t(k) * cols + c0 + i) * 2, 2);
              v = half_to_float(hv) * (T.in_scale != nullptr ? T.in_scale[c0 + i] : 1.0f) * x[c0 + i];
            }
            z[i] = v;
            total += v;
          }
          for (uint32_t g = 0; g < kTile / 4; ++g) {
            lut[g][0] = 0.0f;
            for (uint32_t m = 1; m < 16; ++m) lut[g][m] = lut[g][m & (m - 1)] + z[4 * g + __builtin_ctz(m)];
          }
          const uint32_t nbytes = (n + 7) / 8;
          for (uint32_t r = r0; r < r1; ++r) {
            const uint8_t* sr = signs + size_t(r) * bv.sign_row_bytes + c0 / 8;
            uint8_t gathered[kTile / 8];
            if (bv.signs16) {  // this tile's bytes of row r, from wherever its 16-row group keeps them
              for (uint32_t j = 0; j < nbytes; ++j) {
                gathered[j] = signs[signs16_byte(r, c0 / 8 + j, rows, bv.sign_row_bytes)];
              }
              sr = gathered;
            }
            float pos = 0.0f;
            for (uint32_t j = 0; j < nbytes; ++j) pos += lut[2 * j][sr[j] & 15] + lut[2 * j + 1][sr[j] >> 4];
            uint16_t hu;
            std::memcpy(&hu, U + (size_t(k) * rows + r) * 2, 2);
            yt[r] += (bv.u_scale * half_to_float(hu)) * (2.0f * pos - total);
          }
        }
      }
    }
  }
}

}  // namespace stk

// BitStack kernel, AVX-512 (F + BW + VL, F16C): the sign bits of 16 columns
// are directly an AVX-512 mask. Per (token, block, rank, tile of 256 columns)
// z = v_k ⊙ s ⊙ x is formed once in fp32; a row's signed sum over the tile is
// 2 * (masked sum of z where the sign is +) - sum(z).
#include <immintrin.h>

#include <cstring>

#include "runtime/bitstack_format.h"
#include "runtime/block_pool.h"
#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

inline __mmask16 tail_mask16(uint32_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u); }

}  // namespace

void matmul_bitstack_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                            uint32_t r1) {
  constexpr uint32_t kTile = 256;
  const BitStackTensor& T = *reinterpret_cast<const BitStackTensor*>(w.data);
  const uint32_t rows = w.rows, cols = w.cols;
  alignas(64) float z[kTile];
  for (uint32_t t = 0; t < a.n; ++t) {
    const float* x = a.x + size_t(t) * a.ldx;
    float* yt = y + size_t(t) * ldy;
    for (uint32_t r = r0; r < r1; ++r) yt[r] = 0.0f;
    for (uint32_t b = 0; b < T.n_loaded; ++b) {
      const BitStackBlockView bv = bitstack_block_view(T, b);
      const uint8_t* signs = bv.signs;
      const uint16_t* U = reinterpret_cast<const uint16_t*>(bv.U);
      const uint16_t* V = reinterpret_cast<const uint16_t*>(bv.V);
      const uint32_t stride = bv.sign_row_bytes;
      const float us = bv.u_scale;
      for (uint32_t k = 0; k < bv.rank; ++k) {
        const uint16_t* Vk = V + size_t(k) * cols;
        const uint16_t* Uk = U + size_t(k) * rows;
        for (uint32_t c0 = 0; c0 < cols; c0 += kTile) {
          const uint32_t n = cols - c0 < kTile ? cols - c0 : kTile;
          const uint32_t chunks = (n + 15) / 16;
          __m512 tot = _mm512_setzero_ps();
          for (uint32_t i = 0; i < chunks; ++i) {
            const __mmask16 m = tail_mask16(n - i * 16);
            const uint32_t c = c0 + i * 16;
            __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, Vk + c));
            if (T.in_scale != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, T.in_scale + c));
            __m512 zz = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, x + c));
            _mm512_store_ps(z + i * 16, zz);
            tot = _mm512_add_ps(tot, zz);
          }
          const float total = _mm512_reduce_add_ps(tot);
          const uint32_t first_byte = c0 / 8;
          // 16 sign bits of chunk i of a row; the last chunk may own one byte.
          auto bits_of = [&](const uint8_t* sr, uint32_t i) -> __mmask16 {
            uint16_t v = sr[i * 2];
            if (first_byte + i * 2 + 1 < stride) v |= uint16_t(sr[i * 2 + 1]) << 8;
            return __mmask16(v);
          };
          uint32_t r = r0;
          // Four rows at a time: four independent accumulation chains share
          // each z load.
          for (; r + 4 <= r1; r += 4) {
            const uint8_t* s0 = signs + size_t(r) * stride + first_byte;
            const uint8_t* s1 = s0 + stride;
            const uint8_t* s2 = s1 + stride;
            const uint8_t* s3 = s2 + stride;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
            uint32_t i = 0;
            // 64 columns per step: one 8-byte load of sign bits per row.
            for (; i + 4 <= chunks && first_byte + i * 2 + 8 <= stride; i += 4) {
              uint64_t w0, w1, w2, w3;
              std::memcpy(&w0, s0 + i * 2, 8);
              std::memcpy(&w1, s1 + i * 2, 8);
              std::memcpy(&w2, s2 + i * 2, 8);
              std::memcpy(&w3, s3 + i * 2, 8);
              for (uint32_t j = 0; j < 4; ++j) {
                const __m512 zz = _mm512_load_ps(z + (i + j) * 16);
                a0 = _mm512_mask_add_ps(a0, __mmask16(w0 >> (16 * j)), a0, zz);
                a1 = _mm512_mask_add_ps(a1, __mmask16(w1 >> (16 * j)), a1, zz);
                a2 = _mm512_mask_add_ps(a2, __mmask16(w2 >> (16 * j)), a2, zz);
                a3 = _mm512_mask_add_ps(a3, __mmask16(w3 >> (16 * j)), a3, zz);
              }
            }
            for (; i < chunks; ++i) {
              const __m512 zz = _mm512_load_ps(z + i * 16);
              a0 = _mm512_mask_add_ps(a0, bits_of(s0, i), a0, zz);
              a1 = _mm512_mask_add_ps(a1, bits_of(s1, i), a1, zz);
              a2 = _mm512_mask_add_ps(a2, bits_of(s2, i), a2, zz);
              a3 = _mm512_mask_add_ps(a3, bits_of(s3, i), a3, zz);
            }
            yt[r] += _cvtsh_ss(Uk[r]) * us * (2.0f * _mm512_reduce_add_ps(a0) - total);
            yt[r + 1] += _cvtsh_ss(Uk[r + 1]) * us * (2.0f * _mm512_reduce_add_ps(a1) - total);
            yt[r + 2] += _cvtsh_ss(Uk[r + 2]) * us * (2.0f * _mm512_reduce_add_ps(a2) - total);
            yt[r + 3] += _cvtsh_ss(Uk[r + 3]) * us * (2.0f * _mm512_reduce_add_ps(a3) - total);
          }
          for (; r < r1; ++r) {
            const uint8_t* sr = signs + size_t(r) * stride + first_byte;
            __m512 a0 = _mm512_setzero_ps();
            for (uint32_t i = 0; i < chunks; ++i) a0 = _mm512_mask_add_ps(a0, bits_of(sr, i), a0, _mm512_load_ps(z + i * 16));
            yt[r] += _cvtsh_ss(Uk[r]) * us * (2.0f * _mm512_reduce_add_ps(a0) - total);
          }
        }
      }
    }
  }
}

}  // namespace stk

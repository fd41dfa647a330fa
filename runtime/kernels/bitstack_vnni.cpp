// BitStack kernel, AVX-512 VNNI: per (token, block, rank, tile of 256
// columns) z = v_k ⊙ s ⊙ x is quantized to int8 with one scale for the tile
// (as the integer kernels quantize activations). A row's sum of z over its +
// signs is then vpdpbusd(0/1 bytes expanded from 64 sign bits, z_q): 64
// weights per two instructions, in exact integer arithmetic, so the result
// does not depend on how rows are split among threads.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "runtime/bitstack_format.h"
#include "runtime/block_pool.h"
#include "runtime/kernels/kernels.h"

namespace stk {
namespace {

inline __mmask16 tail_mask16(uint32_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u); }

// 64 sign bits of a row starting at byte `at`, reading only bytes < stride.
inline uint64_t load_bits(const uint8_t* row, uint32_t at, uint32_t stride) {
  uint64_t w = 0;
  if (at + 8 <= stride) {
    std::memcpy(&w, row + at, 8);
  } else {
    for (uint32_t b = 0; at + b < stride && b < 8; ++b) w |= uint64_t(row[at + b]) << (8 * b);
  }
  return w;
}

}  // namespace

void matmul_bitstack_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0,
                          uint32_t r1) {
  constexpr uint32_t kTile = 256;
  const BitStackTensor& T = *reinterpret_cast<const BitStackTensor*>(w.data);
  const uint32_t rows = w.rows, cols = w.cols;
  alignas(64) float z[kTile];
  alignas(64) int8_t zq[kTile];
  const __m512i ones = _mm512_set1_epi8(1);
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
      for (uint32_t k = 0; k < bv.rank; ++k) {
        const uint16_t* Vk = V + size_t(k) * cols;
        const uint16_t* Uk = U + size_t(k) * rows;
        for (uint32_t c0 = 0; c0 < cols; c0 += kTile) {
          const uint32_t n = cols - c0 < kTile ? cols - c0 : kTile;
          const uint32_t chunks64 = (n + 63) / 64;
          __m512 amax = _mm512_setzero_ps();
          for (uint32_t i = 0; i < chunks64 * 4; ++i) {
            const uint32_t c = c0 + i * 16;
            const __mmask16 m = i * 16 < n ? tail_mask16(n - i * 16) : __mmask16(0);
            __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, Vk + c));
            if (T.in_scale != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, T.in_scale + c));
            const __m512 zz = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, x + c));
            _mm512_store_ps(z + i * 16, zz);
            amax = _mm512_max_ps(amax, _mm512_abs_ps(zz));
          }
          const float mx = _mm512_reduce_max_ps(amax);
          const float scale = mx / 127.0f * bv.u_scale;  // z's int8 step, times the block's U multiplier
          const float inv = mx > 0.0f ? 127.0f / mx : 0.0f;
          __m512i qsum = _mm512_setzero_si512();
          for (uint32_t i = 0; i < chunks64 * 4; ++i) {
            const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(z + i * 16), _mm512_set1_ps(inv)));
            _mm_store_si128(reinterpret_cast<__m128i*>(zq + i * 16), _mm512_cvtsepi32_epi8(q));
            qsum = _mm512_add_epi32(qsum, q);
          }
          const int32_t total = _mm512_reduce_add_epi32(qsum);
          const uint32_t first_byte = c0 / 8;
          uint32_t r = r0;
          for (; r + 4 <= r1; r += 4) {
            const uint8_t* s0 = signs + size_t(r) * stride;
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
            for (uint32_t i = 0; i < chunks64; ++i) {
              const __m512i q = _mm512_load_si512(zq + i * 64);
              const uint32_t at = first_byte + i * 8;
              a0 = _mm512_dpbusd_epi32(a0, _mm512_maskz_mov_epi8(load_bits(s0, at, stride), ones), q);
              a1 = _mm512_dpbusd_epi32(a1, _mm512_maskz_mov_epi8(load_bits(s0 + stride, at, stride), ones), q);
              a2 = _mm512_dpbusd_epi32(a2, _mm512_maskz_mov_epi8(load_bits(s0 + 2 * stride, at, stride), ones), q);
              a3 = _mm512_dpbusd_epi32(a3, _mm512_maskz_mov_epi8(load_bits(s0 + 3 * stride, at, stride), ones), q);
            }
            yt[r] += _cvtsh_ss(Uk[r]) * scale * float(2 * _mm512_reduce_add_epi32(a0) - total);
            yt[r + 1] += _cvtsh_ss(Uk[r + 1]) * scale * float(2 * _mm512_reduce_add_epi32(a1) - total);
            yt[r + 2] += _cvtsh_ss(Uk[r + 2]) * scale * float(2 * _mm512_reduce_add_epi32(a2) - total);
            yt[r + 3] += _cvtsh_ss(Uk[r + 3]) * scale * float(2 * _mm512_reduce_add_epi32(a3) - total);
          }
          for (; r < r1; ++r) {
            const uint8_t* sr = signs + size_t(r) * stride;
            __m512i a0 = _mm512_setzero_si512();
            for (uint32_t i = 0; i < chunks64; ++i) {
              a0 = _mm512_dpbusd_epi32(a0, _mm512_maskz_mov_epi8(load_bits(sr, first_byte + i * 8, stride), ones),
                                       _mm512_load_si512(zq + i * 64));
            }
            yt[r] += _cvtsh_ss(Uk[r]) * scale * float(2 * _mm512_reduce_add_epi32(a0) - total);
          }
        }
      }
    }
  }
}

}  // namespace stk

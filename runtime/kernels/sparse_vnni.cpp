// AVX-512 VBMI + VNNI kernel for N:M sparse weights whose kept values are
// integers (Q8, Q4) and whose pattern keeps half of each group (1:2, 2:4, 4:8,
// 8:16): integer dot products with the int8 copy of the activations that the
// kernel table asks for (groups of 32 inputs, one float scale each).
//
// A chunk is 64 kept values = 128 inputs (two 32-input activation groups per
// 64 bytes). The 64 in-group positions are unpacked with vpermb + vpmultishiftqb,
// the matching int8 inputs picked with one vpermt2b from the chunk's 128
// inputs, and multiplied with vpdpbusd. Other tensors go to the float kernel
// (sparse_avx512.cpp). Compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512vbmi -mavx512vnni -mfma -mf16c; filed only when the CPU has them.
#include <immintrin.h>

#include "runtime/kernels/sparse_x86_common.h"

namespace stk {
namespace {

using namespace sparse_x86;

struct Consts {
  __m512i perm_sel;   // qword q <- index-stream bytes q*b .. q*b+7
  __m512i shift_ctl;  // byte i of each qword <- bits from i*b
  __m512i idx_mask;
  __m512i group_off;  // byte j: (j / N) * M
  __m512i div4, div8;  // dword d -> d/4, d/8 (as permute indices)
};

Consts make_consts(const Plan& p) {
  alignas(64) uint8_t sel[64], ctl[64], off[64];
  for (uint32_t j = 0; j < 64; ++j) {
    sel[j] = uint8_t((j / 8) * p.L.bits + j % 8);
    ctl[j] = uint8_t((j % 8) * p.L.bits);
    off[j] = uint8_t((j / p.L.n) * p.L.m);
  }
  Consts c;
  c.perm_sel = _mm512_load_si512(sel);
  c.shift_ctl = _mm512_load_si512(ctl);
  c.idx_mask = _mm512_set1_epi8(char((1u << p.L.bits) - 1u));
  c.group_off = _mm512_load_si512(off);
  c.div4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  c.div8 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return c;
}

// Byte offsets (0..127) of chunk c's 64 inputs from its first input.
inline __m512i offsets(const Consts& k, const uint8_t* idx_row, uint32_t c, uint32_t bits) {
  const __mmask64 m = bits >= 8 ? ~__mmask64(0) : (__mmask64(1) << (8 * bits)) - 1;
  const __m512i raw = _mm512_maskz_loadu_epi8(m, idx_row + uint64_t(c) * 8 * bits);
  const __m512i q = _mm512_permutexvar_epi8(k.perm_sel, raw);
  const __m512i idx = _mm512_and_si512(_mm512_multishift_epi64_epi8(k.shift_ctl, q), k.idx_mask);
  return _mm512_add_epi8(idx, k.group_off);
}

// Two consecutive fp16 values as floats in lanes 0 and 1.
inline __m128 half_pair(const uint16_t* h) {
  uint32_t v;
  std::memcpy(&v, h, 4);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(int32_t(v)));
}

// Q4 codes of kept values k0..k0+63 (two 32-blocks) as 64 bytes in kept order.
inline __m512i q4_codes(const uint8_t* blk) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk));
  const __m512i z = _mm512_castsi256_si512(v);
  const __m512i d = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));  // b0-15, b0-15, b16-31, b16-31
  const __m512i hi = _mm512_srli_epi16(d, 4);
  const __m512i mixed = _mm512_mask_blend_epi64(__mmask8(0xCC), d, hi);  // high nibbles in 128-lanes 1 and 3
  return _mm512_and_si512(mixed, _mm512_set1_epi8(15));
}

template <int NT, ValueKind VF>
void rows_tile(const Plan& p, const Consts& k, const Activations& a, uint32_t t0, float* y, size_t ldy, uint32_t r0,
               uint32_t r1) {
  const uint32_t chunks = p.L.kept_full / 64, bits = p.L.bits;
  const uint32_t act_groups = (p.cols + 31) / 32;
  const int8_t* aq[NT];
  const float* as[NT];
  const float* xs[NT];
  for (int t = 0; t < NT; ++t) {
    aq[t] = a.q8 + size_t(t0 + t) * a.ldq;
    as[t] = a.q8_scales + size_t(t0 + t) * act_groups;
    xs[t] = a.x + size_t(t0 + t) * a.ldx;
  }
  const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* idx_row = p.index_row(r);
    const uint8_t* vrow = p.value_row(r);
    const uint16_t* srow = VF == ValueKind::Q8 ? p.q8_scales(r) : p.q4_scales(r);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (uint32_t c = 0; c < chunks; ++c) {
      const uint32_t k0 = c * 64, base = c * 128;
      const __m512i off = offsets(k, idx_row, c, bits);
      __m512i wv;
      __m512 wd, wm = _mm512_setzero_ps();
      if (VF == ValueKind::Q8) {
        wv = _mm512_xor_si512(_mm512_loadu_si512(vrow + k0), _mm512_set1_epi8(char(0x80)));  // w + 128, unsigned
        wd = _mm512_permutexvar_ps(k.div8, _mm512_castps128_ps512(half_pair(srow + k0 / 32)));
      } else {
        wv = q4_codes(vrow + (k0 / 32) * 16);
        const uint32_t g0 = k0 / p.LB.group, gpr = p.LB.groups_per_row;
        if ((k0 + 32) / p.LB.group != g0) {  // the chunk's halves are in groups g0 and g0 + 1
          wd = _mm512_permutexvar_ps(k.div8, _mm512_castps128_ps512(half_pair(srow + g0)));
          wm = _mm512_permutexvar_ps(k.div8, _mm512_castps128_ps512(half_pair(srow + gpr + g0)));
        } else {  // one group covers the chunk
          wd = _mm512_set1_ps(_cvtsh_ss(srow[g0]));
          wm = _mm512_set1_ps(_cvtsh_ss(srow[gpr + g0]));
        }
      }
      for (int t = 0; t < NT; ++t) {
        const int8_t* x = aq[t] + base;
        const __m512i xa = _mm512_permutex2var_epi8(_mm512_loadu_si512(x), off, _mm512_loadu_si512(x + 64));
        const __m512 sc = _mm512_permutexvar_ps(k.div4, _mm512_castps128_ps512(_mm_loadu_ps(as[t] + base / 32)));
        const __m512i sa = _mm512_dpbusd_epi32(zero, ones, xa);  // sum of the picked activations per dword
        __m512i sq = _mm512_dpbusd_epi32(zero, wv, xa);
        if (VF == ValueKind::Q8) {
          sq = _mm512_sub_epi32(sq, _mm512_slli_epi32(sa, 7));
          acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sq), wd), sc, acc[t]);
        } else {
          const __m512 part = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sa), wm, _mm512_mul_ps(_mm512_cvtepi32_ps(sq), wd));
          acc[t] = _mm512_fmadd_ps(part, sc, acc[t]);
        }
      }
    }
    for (int t = 0; t < NT; ++t) {
      y[size_t(t0 + t) * ldy + r] =
          _mm512_reduce_add_ps(acc[t]) + scalar_rest(p, r, chunks * 64, xs[t]);
    }
  }
}

template <ValueKind VF>
void run(const Plan& p, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const Consts k = make_consts(p);
  uint32_t t0 = 0;
  for (; t0 + 4 <= a.n; t0 += 4) rows_tile<4, VF>(p, k, a, t0, y, ldy, r0, r1);
  switch (a.n - t0) {
    case 3: rows_tile<3, VF>(p, k, a, t0, y, ldy, r0, r1); break;
    case 2: rows_tile<2, VF>(p, k, a, t0, y, ldy, r0, r1); break;
    case 1: rows_tile<1, VF>(p, k, a, t0, y, ldy, r0, r1); break;
    default: break;
  }
}

}  // namespace

void matmul_sparse_vnni(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  Plan p;
  const bool half = plan_sparse(w, 16, &p) && 2 * p.L.n == p.L.m && (p.L.n & (p.L.n - 1)) == 0 && p.L.n <= 8;
  if (!half || p.vf == ValueKind::F32 || a.q8 == nullptr) {
    matmul_sparse_avx512(w, a, y, ldy, r0, r1);
    return;
  }
  if (p.vf == ValueKind::Q8) {
    run<ValueKind::Q8>(p, a, y, ldy, r0, r1);
  } else {
    run<ValueKind::Q4>(p, a, y, ldy, r0, r1);
  }
}

}  // namespace stk

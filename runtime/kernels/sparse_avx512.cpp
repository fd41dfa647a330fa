// AVX-512 kernel for N:M sparse weights (runtime/sparse.h), float activations.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; only called
// after run-time detection.
//
// A row's kept values are taken 16 at a time ("chunks"). The 16 in-group
// positions are unpacked from the index bits with one variable shift, turned
// into offsets from the chunk's first group, and the matching inputs are
// picked from registers: when the chunk's groups span at most 32 inputs
// (2:4, 4:8, 8:16, 6:8, 7:8, ...) by one vpermt2ps of two loads, up to 64
// (1:4, 2:8, 4:16, 12:16, ...) by two and a blend, otherwise by a gather.
// Kept values past the last full chunk and the tail group go through the
// scalar loop of sparse_x86_common.h.
#include <immintrin.h>

#include "runtime/kernels/sparse_x86_common.h"

namespace stk {
namespace {

using namespace sparse_x86;

inline __mmask16 mask16(int64_t left) { return left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? 0 : __mmask16((1u << left) - 1u); }

// Offsets of chunk c's 16 inputs from its first group's first column.
inline __m512i offsets(const Plan& p, const uint8_t* idx_row, uint32_t c, uint32_t rem) {
  const uint32_t b = p.L.bits;
  uint64_t bits;
  std::memcpy(&bits, idx_row + uint64_t(c) * 2 * b, 8);
  const __m512i bc = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(int32_t(uint32_t(bits)))),
                                        _mm256_set1_epi32(int32_t(uint32_t(bits >> (8 * b)))), 1);
  const __m512i iv = _mm512_and_si512(_mm512_srlv_epi32(bc, _mm512_load_si512(p.shifts)),
                                      _mm512_set1_epi32(int32_t((1u << b) - 1u)));
  return _mm512_add_epi32(iv, _mm512_load_si512(p.offs[rem]));
}

// The 16 kept values of chunk k0..k0+15 of a row as floats.
template <ValueKind VF>
inline __m512 weights(const Plan& q, const uint8_t* vrow, const uint16_t* srow, uint32_t k0) {
  if (VF == ValueKind::F32) return _mm512_loadu_ps(reinterpret_cast<const float*>(vrow) + k0);
  if (VF == ValueKind::Q8) {
    const __m512 w = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vrow + k0))));
    return _mm512_mul_ps(w, _mm512_set1_ps(_cvtsh_ss(srow[k0 / kQ8Group])));
  }
  // Q4: 16-byte blocks of 32 codes, low nibbles first; d[groups] then m[groups].
  __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vrow + (k0 / 32) * 16)));
  c = (k0 & 16) ? _mm512_srli_epi32(c, 4) : _mm512_and_si512(c, _mm512_set1_epi32(15));
  const uint32_t g = k0 / q.LB.group;
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(_cvtsh_ss(srow[g])),
                         _mm512_set1_ps(_cvtsh_ss(srow[q.LB.groups_per_row + g])));
}

template <Path P>
inline __m512 pick(const float* xt, uint32_t base, int64_t left, __m512i off, __m512i last) {
  const float* x = xt + base;
  if (P == Path::Perm2) {
    if (left >= 32) return _mm512_permutex2var_ps(_mm512_loadu_ps(x), off, _mm512_loadu_ps(x + 16));
    return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(mask16(left), x), off,
                                  _mm512_maskz_loadu_ps(mask16(left - 16), x + 16));
  }
  if (P == Path::Perm4) {
    __m512 lo, hi;
    if (left >= 64) {
      lo = _mm512_permutex2var_ps(_mm512_loadu_ps(x), off, _mm512_loadu_ps(x + 16));
      hi = _mm512_permutex2var_ps(_mm512_loadu_ps(x + 32), off, _mm512_loadu_ps(x + 48));
    } else {
      lo = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(mask16(left), x), off,
                                  _mm512_maskz_loadu_ps(mask16(left - 16), x + 16));
      hi = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(mask16(left - 32), x + 32), off,
                                  _mm512_maskz_loadu_ps(mask16(left - 48), x + 48));
    }
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(off, _mm512_set1_epi32(32)), lo, hi);
  }
  const __m512i col = _mm512_min_epu32(_mm512_add_epi32(off, _mm512_set1_epi32(int32_t(base))), last);
  return _mm512_i32gather_ps(col, xt, 4);
}

// Rows r0..r1 for tokens t0..t0+NT-1. Two accumulators per token (even and
// odd chunks), always combined the same way, so results do not depend on NT
// or the row range.
template <int NT, Path P, ValueKind VF>
void rows_tile(const Plan& p, const Activations& a, uint32_t t0, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const uint32_t cols = p.cols, chunks = p.chunks, m = p.L.m, n = p.L.n;
  const uint32_t step_groups = 16 / n, step_rem = 16 % n;
  const float* xs[NT];
  for (int t = 0; t < NT; ++t) xs[t] = a.x + size_t(t0 + t) * a.ldx;
  const __m512i last = _mm512_set1_epi32(int32_t(cols - 1));
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* idx_row = p.index_row(r);
    const uint8_t* vrow = p.value_row(r);
    const uint16_t* srow = VF == ValueKind::Q8 ? p.q8_scales(r) : VF == ValueKind::Q4 ? p.q4_scales(r) : nullptr;
    __m512 acc[2][NT];
    for (int t = 0; t < NT; ++t) acc[0][t] = acc[1][t] = _mm512_setzero_ps();
    uint32_t g0 = 0, rem = 0;  // first group of the chunk, kept values before it in that group
    for (uint32_t c = 0; c < chunks; ++c) {
      const __m512i off = offsets(p, idx_row, c, rem);
      const __m512 w = weights<VF>(p, vrow, srow, c * 16);
      const uint32_t base = g0 * m;
      const int64_t left = int64_t(cols) - base;
      for (int t = 0; t < NT; ++t) acc[c & 1][t] = _mm512_fmadd_ps(w, pick<P>(xs[t], base, left, off, last), acc[c & 1][t]);
      g0 += step_groups, rem += step_rem;
      if (rem >= n) rem -= n, ++g0;
    }
    for (int t = 0; t < NT; ++t) {
      y[size_t(t0 + t) * ldy + r] =
          _mm512_reduce_add_ps(_mm512_add_ps(acc[0][t], acc[1][t])) + scalar_rest(p, r, chunks * 16, xs[t]);
    }
  }
}

template <Path P, ValueKind VF>
void run(const Plan& p, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  uint32_t t0 = 0;
  for (; t0 + 4 <= a.n; t0 += 4) rows_tile<4, P, VF>(p, a, t0, y, ldy, r0, r1);
  switch (a.n - t0) {
    case 3: rows_tile<3, P, VF>(p, a, t0, y, ldy, r0, r1); break;
    case 2: rows_tile<2, P, VF>(p, a, t0, y, ldy, r0, r1); break;
    case 1: rows_tile<1, P, VF>(p, a, t0, y, ldy, r0, r1); break;
    default: break;
  }
}

template <Path P>
void run_path(const Plan& p, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  switch (p.vf) {
    case ValueKind::F32: run<P, ValueKind::F32>(p, a, y, ldy, r0, r1); break;
    case ValueKind::Q8: run<P, ValueKind::Q8>(p, a, y, ldy, r0, r1); break;
    case ValueKind::Q4: run<P, ValueKind::Q4>(p, a, y, ldy, r0, r1); break;
  }
}

}  // namespace

void matmul_sparse_avx512(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  Plan p;
  if (!plan_sparse(w, 16, &p)) {
    matmul_sparse_scalar(w, a, y, ldy, r0, r1);
    return;
  }
  switch (p.path) {
    case Path::Perm2: run_path<Path::Perm2>(p, a, y, ldy, r0, r1); break;
    case Path::Perm4: run_path<Path::Perm4>(p, a, y, ldy, r0, r1); break;
    case Path::Gather: run_path<Path::Gather>(p, a, y, ldy, r0, r1); break;
  }
}

}  // namespace stk

// AVX2 kernel for N:M sparse weights (runtime/sparse.h), float activations.
// Compiled with -mavx2 -mfma -mf16c; only called after run-time detection.
//
// The AVX-512 kernel's scheme with 8-value chunks: positions unpacked with
// one variable shift, inputs picked by vpermps from two loads and a blend on
// bit 3 of the offset (chunks spanning <= 16 inputs: 2:4, 4:8, 7:8, 8:16),
// from four loads (<= 32: 1:4, 2:8, 6:8, 12:16), otherwise gathered.
#include <immintrin.h>

#include "runtime/kernels/avx2_hsum.h"
#include "runtime/kernels/prefetch_x86.h"
#include "runtime/kernels/sparse_x86_common.h"

namespace stk {
namespace {

using namespace sparse_x86;

// Load of up to 8 floats, zeros past `left`.
inline __m256 load_part(const float* x, int64_t left) {
  if (left >= 8) return _mm256_loadu_ps(x);
  if (left <= 0) return _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(x, _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(left)), lane));
}

// Picks lanes of x0/x1 by the low 4 bits of off.
inline __m256 pick2(__m256 x0, __m256 x1, __m256i off) {
  const __m256 lo = _mm256_permutevar8x32_ps(x0, off), hi = _mm256_permutevar8x32_ps(x1, off);
  return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(off, 28)));
}

inline __m256i offsets(const Plan& p, const uint8_t* idx_row, uint32_t c, uint32_t rem) {
  const uint32_t b = p.L.bits;
  uint32_t bits;
  std::memcpy(&bits, idx_row + uint64_t(c) * b, 4);
  const __m256i iv = _mm256_and_si256(
      _mm256_srlv_epi32(_mm256_set1_epi32(int32_t(bits)), _mm256_load_si256(reinterpret_cast<const __m256i*>(p.shifts))),
      _mm256_set1_epi32(int32_t((1u << b) - 1u)));
  return _mm256_add_epi32(iv, _mm256_load_si256(reinterpret_cast<const __m256i*>(p.offs[rem])));
}

// The 8 kept values k0..k0+7 of row r as floats. Q4 takes its group's d and
// m (broadcast) from the caller, which decodes them once per group.
inline __m256 weights(const Plan& q, uint32_t r, uint32_t k0, __m256 q4_d, __m256 q4_m) {
  switch (q.vf) {
    case ValueKind::F32:
      return _mm256_loadu_ps(reinterpret_cast<const float*>(q.v.data) + uint64_t(r) * q.L.kept + k0);
    case ValueKind::Q8: {
      const int8_t* qr = reinterpret_cast<const int8_t*>(q.v.data) + uint64_t(r) * q.L.kept + k0;
      const __m256 w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qr))));
      return _mm256_mul_ps(w, _mm256_set1_ps(_cvtsh_ss(q.q8_scales(r)[k0 / kQ8Group])));
    }
    default: {  // Q4: 16-byte blocks of 32 codes, low nibbles first
      const uint8_t* blk = q.v.data + uint64_t(r) * q.LB.row_code_bytes + (k0 / 32) * 16 + (k0 & 8);
      __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk)));
      c = (k0 & 16) ? _mm256_srli_epi32(c, 4) : _mm256_and_si256(c, _mm256_set1_epi32(15));
      return _mm256_fmadd_ps(_mm256_cvtepi32_ps(c), q4_d, q4_m);
    }
  }
}

template <int NT>
void rows_tile(const Plan& p, const Activations& a, uint32_t t0, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  const uint32_t cols = p.cols;
  const float* xs[NT];
  for (int t = 0; t < NT; ++t) xs[t] = a.x + size_t(t0 + t) * a.ldx;
  const __m256i last = _mm256_set1_epi32(int32_t(cols - 1));
  // Value and index bytes per chunk, for the decode prefetch.
  const uint32_t vb = p.vf == ValueKind::F32 ? 32 : p.vf == ValueKind::Q8 ? 8 : 4, ib = p.L.bits;
  for (uint32_t r = r0; r < r1; ++r) {
    if (r + kSideRowsAhead < p.v.rows && p.vf != ValueKind::F32) {  // a row's scales, once (prefetch_x86.h)
      const uint32_t ra = r + kSideRowsAhead;
      if (p.vf == ValueKind::Q8) {
        prefetch_span(p.q8_scales(ra), uint64_t(q8_groups_per_row(p.L.kept)) * 2);
      } else {
        prefetch_span(p.q4_scales(ra), p.LB.row_scale_bytes);
      }
    }
    const uint8_t* idx_row = p.index_row(r);
    const uint8_t* val_row = p.value_row(r);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    uint32_t g0 = 0, rem = 0;  // first group of the chunk, kept values before it in that group
    // Q4: the value group's scales, decoded when a chunk starts a group
    // (groups are multiples of 32 values, so chunks never straddle one), not
    // with a division and two fp16 conversions per 8-value chunk (stories110M
    // shape, 2:4-q4 decode: 32.8 -> 38.3 tok/s).
    __m256 q4_d = _mm256_setzero_ps(), q4_m = q4_d;
    uint32_t q4_end = 0;  // kept index where the current value group ends
    for (uint32_t c = 0; c < p.chunks; ++c) {
      if (NT == 1) {  // decode: memory-bound; one prefetch per new cache line of each stream
        if ((c * vb) % 64 < vb) _mm_prefetch(reinterpret_cast<const char*>(val_row + uint64_t(c) * vb + kStreamAhead), _MM_HINT_T0);
        if ((c * ib) % 64 < ib) _mm_prefetch(reinterpret_cast<const char*>(idx_row + uint64_t(c) * ib + kStreamAhead / 4), _MM_HINT_T0);
      }
      const __m256i off = offsets(p, idx_row, c, rem);
      if (p.vf == ValueKind::Q4 && c * 8 == q4_end) {
        const uint32_t g = c * 8 / p.LB.group;
        const uint16_t* dm = p.q4_scales(r) + g;  // d[groups], then m[groups]
        q4_d = _mm256_set1_ps(_cvtsh_ss(dm[0]));
        q4_m = _mm256_set1_ps(_cvtsh_ss(dm[p.LB.groups_per_row]));
        q4_end += p.LB.group;
      }
      const __m256 w = weights(p, r, c * 8, q4_d, q4_m);
      const uint32_t base = g0 * p.L.m;
      const int64_t left = int64_t(cols) - base;
      for (int t = 0; t < NT; ++t) {
        const float* x = xs[t] + base;
        __m256 xg;
        if (p.path == Path::Perm2) {
          xg = left >= 16 ? pick2(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8), off)
                          : pick2(load_part(x, left), load_part(x + 8, left - 8), off);
        } else if (p.path == Path::Perm4) {
          __m256 lo, hi;
          if (left >= 32) {
            lo = pick2(_mm256_loadu_ps(x), _mm256_loadu_ps(x + 8), off);
            hi = pick2(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(x + 24), off);
          } else {
            lo = pick2(load_part(x, left), load_part(x + 8, left - 8), off);
            hi = pick2(load_part(x + 16, left - 16), load_part(x + 24, left - 24), off);
          }
          xg = _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(off, 27)));
        } else {
          const __m256i col = _mm256_min_epu32(_mm256_add_epi32(off, _mm256_set1_epi32(int32_t(base))), last);
          xg = _mm256_i32gather_ps(xs[t], col, 4);
        }
        acc[t] = _mm256_fmadd_ps(w, xg, acc[t]);
      }
      g0 += 8 / p.L.n, rem += 8 % p.L.n;
      if (rem >= p.L.n) rem -= p.L.n, ++g0;
    }
    for (int t = 0; t < NT; ++t) y[size_t(t0 + t) * ldy + r] = hsum256(acc[t]) + scalar_rest(p, r, p.chunks * 8, xs[t]);
  }
}

}  // namespace

void matmul_sparse_avx2(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  Plan p;
  if (!plan_sparse(w, 8, &p)) {
    matmul_sparse_scalar(w, a, y, ldy, r0, r1);
    return;
  }
  uint32_t t0 = 0;
  for (; t0 + 4 <= a.n; t0 += 4) rows_tile<4>(p, a, t0, y, ldy, r0, r1);
  switch (a.n - t0) {
    case 3: rows_tile<3>(p, a, t0, y, ldy, r0, r1); break;
    case 2: rows_tile<2>(p, a, t0, y, ldy, r0, r1); break;
    case 1: rows_tile<1>(p, a, t0, y, ldy, r0, r1); break;
    default: break;
  }
}

}  // namespace stk

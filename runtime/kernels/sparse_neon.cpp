// NEON kernel for N:M sparse weights (runtime/sparse.h), AArch64 and ARMv7-A,
// float activations (the numerics of sparse_scalar.cpp; only the summation
// order differs).
//
// A row's kept values are taken 8 at a time ("chunks", inside the full
// groups). A chunk's 8 in-group positions are b bytes of the index stream,
// unpacked with one variable shift per 4 lanes and turned into offsets from
// the chunk's first group. When every chunk's inputs lie within 16 columns of
// that group (1:2, 2:4, 4:8, 7:8, 8:16, 3:4, ...) they are picked from four
// vector loads by a byte table lookup (tbl); otherwise lane by lane. Values
// of every value format (f32, q8, q4, q3, q2, t2) are decoded 8 at a time;
// the kept values after the last chunk and the tail group go through a
// scalar loop.
#if defined(__ARM_NEON)
#include <arm_neon.h>

#include <cstring>

#include "runtime/kernels/kernels.h"
#include "runtime/kernels/neon_common.h"
#include "runtime/lowbit.h"
#include "runtime/sparse.h"

namespace stk {
namespace {

using neon::half_at;
using neon::hsum;
using neon::mla;
using neon::mla_n;

constexpr uint32_t kChunk = 8;
constexpr uint32_t kTokens = 4;  // tokens that share each decoded chunk
constexpr uint32_t kWindow = 16;  // inputs a tbl pick reads

struct Plan {
  SparseLayout L;
  WeightView v;     // the value plane: a rows x kept tensor
  LowbitLayout LB;  // low-bit values only
  uint32_t cols, chunks;
  bool window;  // every chunk's inputs lie within kWindow columns of its first group
  const uint8_t* indices;
  uint64_t q8_scales_at;
  uint32_t offs[kSparseMaxM][kChunk];  // [kept values before the chunk in its first group][lane]
  int32_t shifts[kChunk];              // -(lane * bits): right shifts for vshlq

  const uint8_t* index_row(uint32_t r) const { return indices + uint64_t(r) * L.index_row_bytes; }
};

// False when the value plane's layout is invalid (model_open rejects such a tensor).
bool plan_sparse(const WeightView& w, const SparseLayout& L, Plan* p) {
  p->L = L;
  p->v = sparse_values_view(w, L);
  p->cols = w.cols;
  p->chunks = L.kept_full / kChunk;
  p->indices = w.data + L.index_offset;
  p->q8_scales_at = L.value_format == WeightFormat::Q8 ? q8_scales_offset(w.rows, L.kept) : 0;
  if (is_lowbit_format(L.value_format) && !lowbit_layout(L.value_format, w.rows, L.kept, L.value_params, &p->LB)) {
    return false;
  }
  uint32_t span = 0;
  for (uint32_t rem = 0; rem < L.n; ++rem) {
    for (uint32_t lane = 0; lane < kChunk; ++lane) p->offs[rem][lane] = ((rem + lane) / L.n) * L.m;
    const uint32_t s = p->offs[rem][kChunk - 1] + L.m;
    span = s > span ? s : span;
  }
  for (uint32_t lane = 0; lane < kChunk; ++lane) p->shifts[lane] = -int32_t(lane * L.bits);
  p->window = span <= kWindow;
  return true;
}

// The 8 kept values k0..k0+7 of a row as floats (k0 a multiple of 8, so they
// lie in one 32-block and one scale group of every value format). d and m
// are the row's current low-bit group scales, refreshed when the group changes.
struct ValueRow {
  const uint8_t* codes;   // f32 / int8 values or low-bit code blocks
  const uint8_t* scales;  // q8 or low-bit scale plane of the row
  uint32_t group = ~0u;
  float d = 0.0f, m = 0.0f;
};

inline void values8(const Plan& p, ValueRow* vr, uint32_t k0, float32x4_t* lo, float32x4_t* hi) {
  const WeightFormat f = p.L.value_format;
  if (f == WeightFormat::F32) {
    const float* v = reinterpret_cast<const float*>(vr->codes) + k0;
    *lo = vld1q_f32(v);
    *hi = vld1q_f32(v + 4);
    return;
  }
  if (f == WeightFormat::Q8) {
    const int16x8_t q = vmovl_s8(vld1_s8(reinterpret_cast<const int8_t*>(vr->codes) + k0));
    const float s = half_at(vr->scales, k0 / kQ8Group);
    *lo = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q))), s);
    *hi = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(q))), s);
    return;
  }
  // Low-bit codes (runtime/lowbit.h): codes k0%32 .. +7 of block k0/32.
  const uint8_t* blk = vr->codes + uint64_t(k0 / kLowbitBlock) * p.LB.block_bytes;
  const uint32_t part = (k0 % kLowbitBlock) / 8;  // 0..3
  uint8x8_t q;
  if (f == WeightFormat::Q4) {  // low nibbles hold codes 0..15, high nibbles 16..31
    const uint8x8_t v = vld1_u8(blk + (part & 1) * 8);
    q = part >= 2 ? vshr_n_u8(v, 4) : vand_u8(v, vdup_n_u8(15));
  } else {  // Q3, Q2, T2: low two bits at bits 2*part of bytes 0..7
    q = vand_u8(vshl_u8(vld1_u8(blk), vdup_n_s8(int8_t(-2 * int32_t(part)))), vdup_n_u8(3));
    if (f == WeightFormat::Q3) {  // bit 2: bits 0..7 of byte 8 + part
      static const uint8_t kBit[8] = {1, 2, 4, 8, 16, 32, 64, 128};
      q = vorr_u8(q, vand_u8(vtst_u8(vdup_n_u8(blk[8 + part]), vld1_u8(kBit)), vdup_n_u8(4)));
    }
  }
  const uint32_t g = k0 / p.LB.group;
  if (g != vr->group) {
    vr->group = g;
    vr->d = half_at(vr->scales, g);
    vr->m = f == WeightFormat::T2 ? -vr->d : half_at(vr->scales, uint64_t(p.LB.groups_per_row) + g);
  }
  const uint16x8_t q16 = vmovl_u8(q);
  *lo = mla_n(vdupq_n_f32(vr->m), vcvtq_f32_u32(vmovl_u16(vget_low_u16(q16))), vr->d);
  *hi = mla_n(vdupq_n_f32(vr->m), vcvtq_f32_u32(vmovl_u16(vget_high_u16(q16))), vr->d);
}

// Picks 4 floats from x[0..15] by byte indices (4 per float, < 64; larger
// ones give 0, so a malformed index cannot leave the window).
inline float32x4_t pick16(const float32x4_t x[4], uint8x16_t idx) {
#if defined(__aarch64__)
  uint8x16x4_t t;
  for (int i = 0; i < 4; ++i) t.val[i] = vreinterpretq_u8_f32(x[i]);
  return vreinterpretq_f32_u8(vqtbl4q_u8(t, idx));
#else
  uint8x8x4_t a, b;
  for (int i = 0; i < 2; ++i) {
    a.val[2 * i] = vget_low_u8(vreinterpretq_u8_f32(x[i]));
    a.val[2 * i + 1] = vget_high_u8(vreinterpretq_u8_f32(x[i]));
    b.val[2 * i] = vget_low_u8(vreinterpretq_u8_f32(x[i + 2]));
    b.val[2 * i + 1] = vget_high_u8(vreinterpretq_u8_f32(x[i + 2]));
  }
  const uint8x8_t i0 = vget_low_u8(idx), i1 = vget_high_u8(idx), k32 = vdup_n_u8(32);
  const uint8x8_t r0 = vtbx4_u8(vtbl4_u8(a, i0), b, vsub_u8(i0, k32));
  const uint8x8_t r1 = vtbx4_u8(vtbl4_u8(a, i1), b, vsub_u8(i1, k32));
  return vreinterpretq_f32_u8(vcombine_u8(r0, r1));
#endif
}

// Byte indices 4*off .. 4*off+3 of each lane (off < 64).
inline uint8x16_t byte_index(uint32x4_t off) {
  return vreinterpretq_u8_u32(vmlaq_n_u32(vdupq_n_u32(0x03020100u), off, 0x04040404u));
}

// Sum over kept values [from, kept) of row r for NT tokens, in kept order:
// values decoded once, then one scalar loop per token.
template <int NT>
void rest(const Plan& p, uint32_t r, uint32_t from, const float* const* xs, float* out) {
  float vals[4 * kChunk];  // at most 7 values of the full groups + a tail keeping < 16
  uint32_t col[4 * kChunk];
  for (int t = 0; t < NT; ++t) out[t] = 0.0f;
  const uint8_t* idx = p.index_row(r);
  for (uint32_t j0 = from; j0 < p.L.kept; j0 += 4 * kChunk) {
    const uint32_t count = p.L.kept - j0 < 4 * kChunk ? p.L.kept - j0 : 4 * kChunk;
    sparse_values(p.v, r, j0, count, vals);
    for (uint32_t i = 0; i < count; ++i) col[i] = sparse_column(p.L, p.cols, j0 + i, sparse_index(idx, j0 + i, p.L.bits));
    for (int t = 0; t < NT; ++t) {
      float s = out[t];
      for (uint32_t i = 0; i < count; ++i) s += vals[i] * xs[t][col[i]];
      out[t] = s;
    }
  }
}

// Rows r0..r1 for NT tokens. Two accumulators per token (lanes 0-3 and 4-7
// of each chunk), always combined the same way, so results do not depend on
// NT or the row range.
template <int NT>
void rows_tile(const Plan& p, const float* const* xs, float* const* yt, uint32_t r0, uint32_t r1) {
  const uint32_t cols = p.cols, n = p.L.n, m = p.L.m, bits = p.L.bits;
  const uint32_t step_groups = kChunk / n, step_rem = kChunk % n;
  const uint32x4_t mask = vdupq_n_u32((1u << bits) - 1u), last = vdupq_n_u32(cols - 1);
  const int32x4_t sh_lo = vld1q_s32(p.shifts), sh_hi = vld1q_s32(p.shifts + 4);
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* idx_row = p.index_row(r);
    ValueRow vr;
    if (p.L.value_format == WeightFormat::F32) {
      vr.codes = p.v.data + uint64_t(r) * p.L.kept * 4;
      vr.scales = nullptr;
    } else if (p.L.value_format == WeightFormat::Q8) {
      vr.codes = p.v.data + uint64_t(r) * p.L.kept;
      vr.scales = p.v.data + p.q8_scales_at + uint64_t(r) * q8_groups_per_row(p.L.kept) * 2;
    } else {  // low-bit
      vr.codes = p.v.data + uint64_t(r) * p.LB.row_code_bytes;
      vr.scales = p.v.data + p.LB.scales_offset + uint64_t(r) * p.LB.row_scale_bytes;
    }
    float32x4_t acc[NT][2];
    for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    uint32_t g0 = 0, rem = 0;  // first group of the chunk, kept values before it in that group
    for (uint32_t c = 0; c < p.chunks; ++c) {
      // The chunk's 8 positions: bits bytes from byte c * bits.
      uint32_t ib = 0;
      for (uint32_t i = 0; i < bits; ++i) ib |= uint32_t(idx_row[uint64_t(c) * bits + i]) << (8 * i);
      const uint32x4_t iv = vdupq_n_u32(ib);
      const uint32x4_t off_lo = vaddq_u32(vandq_u32(vshlq_u32(iv, sh_lo), mask), vld1q_u32(p.offs[rem]));
      const uint32x4_t off_hi = vaddq_u32(vandq_u32(vshlq_u32(iv, sh_hi), mask), vld1q_u32(p.offs[rem] + 4));
      float32x4_t w_lo, w_hi;
      values8(p, &vr, c * kChunk, &w_lo, &w_hi);
      const uint32_t base = g0 * m;
      if (p.window) {
        const uint8x16_t b_lo = byte_index(off_lo), b_hi = byte_index(off_hi);
        for (int t = 0; t < NT; ++t) {
          const float* x = xs[t] + base;
          float tmp[kWindow];
          if (cols - base < kWindow) {  // the row ends inside the window: zeros past it
            std::memset(tmp, 0, sizeof tmp);
            std::memcpy(tmp, x, size_t(cols - base) * 4);
            x = tmp;
          }
          const float32x4_t xw[4] = {vld1q_f32(x), vld1q_f32(x + 4), vld1q_f32(x + 8), vld1q_f32(x + 12)};
          acc[t][0] = mla(acc[t][0], w_lo, pick16(xw, b_lo));
          acc[t][1] = mla(acc[t][1], w_hi, pick16(xw, b_hi));
        }
      } else {  // wide patterns (1:4, 2:8, 1:16, ...): lane by lane, clamped to the row
        uint32_t col[kChunk];
        const uint32x4_t vb = vdupq_n_u32(base);
        vst1q_u32(col, vminq_u32(vaddq_u32(off_lo, vb), last));
        vst1q_u32(col + 4, vminq_u32(vaddq_u32(off_hi, vb), last));
        for (int t = 0; t < NT; ++t) {
          const float* x = xs[t];
          float32x4_t lo = vld1q_dup_f32(x + col[0]), hi = vld1q_dup_f32(x + col[4]);
          lo = vld1q_lane_f32(x + col[1], lo, 1);
          hi = vld1q_lane_f32(x + col[5], hi, 1);
          lo = vld1q_lane_f32(x + col[2], lo, 2);
          hi = vld1q_lane_f32(x + col[6], hi, 2);
          lo = vld1q_lane_f32(x + col[3], lo, 3);
          hi = vld1q_lane_f32(x + col[7], hi, 3);
          acc[t][0] = mla(acc[t][0], w_lo, lo);
          acc[t][1] = mla(acc[t][1], w_hi, hi);
        }
      }
      g0 += step_groups, rem += step_rem;
      if (rem >= n) rem -= n, ++g0;
    }
    float tail[NT];
    rest<NT>(p, r, p.chunks * kChunk, xs, tail);
    for (int t = 0; t < NT; ++t) yt[t][r] = hsum(vaddq_f32(acc[t][0], acc[t][1])) + tail[t];
  }
}

}  // namespace

void matmul_sparse_neon(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  SparseLayout L;
  if (!sparse_layout(w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  Plan p;
  if (!plan_sparse(w, L, &p)) return;
  // Four tokens at a time, then the rest one by one (two instantiations).
  for (uint32_t t0 = 0, nt = 0; t0 < a.n; t0 += nt) {
    nt = a.n - t0 >= kTokens ? kTokens : 1;
    const float* xs[kTokens];
    float* yt[kTokens];
    for (uint32_t i = 0; i < nt; ++i) xs[i] = a.x + size_t(t0 + i) * a.ldx, yt[i] = y + size_t(t0 + i) * ldy;
    if (nt == kTokens) {
      rows_tile<kTokens>(p, xs, yt, r0, r1);
    } else {
      rows_tile<1>(p, xs, yt, r0, r1);
    }
  }
}

}  // namespace stk
#endif  // __ARM_NEON

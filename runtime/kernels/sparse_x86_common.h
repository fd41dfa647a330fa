// Shared by the x86 N:M sparse kernels (sparse_avx2.cpp, sparse_avx2_int8.cpp,
// sparse_avx512.cpp, sparse_vnni.cpp):
// the per-call plan (layout, value format, per-lane group offsets) and the
// scalar loop for the kept values no vector chunk covers. Included
// only by those files; everything has internal linkage so each ISA gets its
// own copy.
#pragma once
#include <cstdint>
#include <cstring>

#include "runtime/half.h"
#include "runtime/kernels/kernels.h"
#include "runtime/lowbit.h"
#include "runtime/sparse.h"

namespace stk {
namespace sparse_x86 {
namespace {

enum class ValueKind { F32, Q8, Q4 };
// How a chunk's inputs are fetched: a permute over 2 or 4 vector loads from
// the chunk's first column (when its groups span at most 2 or 4 vectors), or
// a gather.
enum class Path { Perm2, Perm4, Gather };

struct Plan {
  SparseLayout L;
  WeightView v;     // the value plane
  LowbitLayout LB;  // Q4 values only
  ValueKind vf;
  Path path;
  uint32_t cols, chunks;  // chunks: full vector chunks inside the full groups
  const uint8_t* indices;
  uint64_t q8_scale_at;
  alignas(64) int32_t offs[kSparseMaxM][16];  // [kept before the chunk in its first group][lane]
  alignas(64) int32_t shifts[16];

  const uint8_t* index_row(uint32_t r) const { return indices + uint64_t(r) * L.index_row_bytes; }
  // Start of row r's value bytes (f32: floats, q8: int8, q4: code blocks).
  const uint8_t* value_row(uint32_t r) const {
    return v.data + uint64_t(r) * (vf == ValueKind::F32 ? uint64_t(L.kept) * 4 : vf == ValueKind::Q8 ? L.kept : LB.row_code_bytes);
  }
  const uint16_t* q8_scales(uint32_t r) const {
    return reinterpret_cast<const uint16_t*>(v.data + q8_scale_at) + uint64_t(r) * q8_groups_per_row(L.kept);
  }
  const uint16_t* q4_scales(uint32_t r) const {
    return reinterpret_cast<const uint16_t*>(v.data + LB.scales_offset + uint64_t(r) * LB.row_scale_bytes);
  }
};

// False when the vector kernel does not handle this tensor (value formats
// other than f32, q8, q4): the caller falls back to the scalar kernel.
// lanes = 0: only the layout and value format (the int8 kernel of
// sparse_vnni.cpp builds its own tables), not the float kernels' offsets.
bool plan_sparse(const WeightView& w, uint32_t lanes, Plan* p) {
  if (!sparse_layout(w.rows, w.cols, w.params, &p->L)) return false;
  const SparseLayout& L = p->L;
  p->v = sparse_values_view(w, L);
  p->cols = w.cols;
  p->indices = w.data + L.index_offset;
  switch (L.value_format) {
    case WeightFormat::F32: p->vf = ValueKind::F32; break;
    case WeightFormat::Q8:
      p->vf = ValueKind::Q8;
      p->q8_scale_at = q8_scales_offset(w.rows, L.kept);
      break;
    case WeightFormat::Q4:
      p->vf = ValueKind::Q4;
      if (!lowbit_layout(WeightFormat::Q4, w.rows, L.kept, L.value_params, &p->LB)) return false;
      break;
    default:
      return false;
  }
  if (lanes == 0) return true;
  p->chunks = L.kept_full / lanes;
  uint32_t span = 0;
  for (uint32_t rem = 0; rem < L.n; ++rem) {
    for (uint32_t lane = 0; lane < 16; ++lane) p->offs[rem][lane] = int32_t(((rem + lane) / L.n) * L.m);
    const uint32_t s = uint32_t(p->offs[rem][lanes - 1]) + L.m;
    span = s > span ? s : span;
  }
  for (uint32_t lane = 0; lane < 16; ++lane) p->shifts[lane] = int32_t((lane % 8) * L.bits);
  p->path = span <= 2 * lanes ? Path::Perm2 : span <= 4 * lanes ? Path::Perm4 : Path::Gather;
  return true;
}

// Sum over kept values [from, kept) of row r, in kept order: in the float
// kernels the values after the last full vector chunk, in the int8 kernels
// (which make one zero-padded chunk of the rest of the full groups) those of
// a last group shorter than M. Decoded here with the plan's layout, each
// group's fp16 scales converted once, rather than through sparse_values(),
// which checks the layout on every call and converts two scales per Q4
// value: on rows a little wider than a chunk that made this loop most of
// the step (stories15M shape, 288 inputs: 16 of a row's 144 kept values,
// 2:4-q4 decode 295 tok/s against dense Q4's 1206).
__attribute__((noinline)) float scalar_rest(const Plan& p, uint32_t r, uint32_t from, const float* x) {
  const uint8_t* idx = p.index_row(r);
  const uint8_t* vrow = p.value_row(r);
  const uint8_t* scales = reinterpret_cast<const uint8_t*>(
      p.vf == ValueKind::Q8 ? p.q8_scales(r) : p.vf == ValueKind::Q4 ? p.q4_scales(r) : nullptr);
  const uint32_t group = p.vf == ValueKind::Q4 ? p.LB.group : kQ8Group;
  const auto scale = [&](uint32_t i) {
    uint16_t h;
    std::memcpy(&h, scales + uint64_t(i) * 2, 2);
    return half_to_float(h);
  };
  uint32_t g_end = from;  // kept index where the current value group ends: decode its scales there
  float d = 0.0f, m = 0.0f, acc = 0.0f;
  for (uint32_t j = from; j < p.L.kept; ++j) {
    float v;
    if (p.vf == ValueKind::F32) {
      std::memcpy(&v, vrow + uint64_t(j) * 4, 4);
    } else {
      if (j == g_end) {
        const uint32_t g = j / group;
        g_end = (g + 1) * group;
        d = scale(g);
        if (p.vf == ValueKind::Q4) m = scale(p.LB.groups_per_row + g);  // m[groups] after d[groups]
      }
      v = p.vf == ValueKind::Q8
              ? float(int8_t(vrow[j])) * d
              : float(lowbit_code(vrow + uint64_t(j / kLowbitBlock) * p.LB.block_bytes, 4, j % kLowbitBlock)) * d + m;
    }
    acc += v * x[sparse_column(p.L, p.cols, j, sparse_index(idx, j, p.L.bits))];
  }
  return acc;
}

// For the int8 kernels' partial chunk (sparse_vnni.cpp, Partial): tokens
// t0 .. t0+nt-1's int8 inputs [from, from + n) at the front of zero-padded
// buffers of `width` bytes, one per token, whose starts go to xp.
inline void copy_padded_inputs(const Activations& a, uint32_t t0, uint32_t nt, uint64_t from, uint32_t n,
                               uint32_t width, int8_t* buf, const int8_t** xp) {
  for (uint32_t t = 0; t < nt; ++t) {
    int8_t* b = buf + size_t(t) * width;
    std::memset(b, 0, width);
    std::memcpy(b, a.q8 + size_t(t0 + t) * a.ldq + from, n);
    xp[t] = b;
  }
}

// Whether the int8 kernels (sparse_vnni.cpp, sparse_avx2_int8.cpp) take this
// tensor: integer values (Q8, Q4), a pattern that keeps half of each group
// of M <= 16 (1:2, 2:4, 4:8, 8:16), and the int8 copy of the activations.
inline bool int8_half_pattern(const WeightView& w, const Activations& a, Plan* p) {
  return plan_sparse(w, 0, p) && 2 * p->L.n == p->L.m && (p->L.n & (p->L.n - 1)) == 0 && p->L.n <= 8 &&
         p->vf != ValueKind::F32 && a.q8 != nullptr;
}

// The int8 kernels' kept values from `from` on (after their last full chunk),
// for tokens t0 .. t0+nt-1 and rows r0 .. r1-1, added to y with the float
// activations.
inline void add_scalar_rest(const Plan& p, const Activations& a, uint32_t from, uint32_t t0, uint32_t nt, float* y,
                            size_t ldy, uint32_t r0, uint32_t r1) {
  if (from >= p.L.kept) return;
  for (uint32_t r = r0; r < r1; ++r) {
    for (uint32_t t = t0; t < t0 + nt; ++t) y[size_t(t) * ldy + r] += scalar_rest(p, r, from, a.x + size_t(t) * a.ldx);
  }
}

}  // namespace
}  // namespace sparse_x86
}  // namespace stk

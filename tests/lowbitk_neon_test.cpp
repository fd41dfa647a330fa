// The NEON kernels of Q4K/Q3K/Q2K/T2K (runtime/kernels/lowbitk_neon.cpp)
// against matmul_lowbitk_scalar and a double-precision reference written
// here from docs/format.md §8.3, on ragged shapes, every group size class and
// log step, with the tensor and the activation buffers ending at a guard
// page (a read past either faults). Also: results independent of the row
// split and of the batch (each token alone gives the bits of the batch).
#include <gtest/gtest.h>

#if defined(__ARM_NEON)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernels/kernels.h"
#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tests/lowbitk_test_support.h"
#include "tools/lowbit_quant.h"
#endif

namespace {

#if defined(__ARM_NEON)

using stk::WeightFormat;
using stk::test::Guarded;

// A real packed tensor (quantize + pack, as the LowbitK tests in
// lowbit_kernel_test.cpp), copied to the end of a guarded mapping, with the
// log step replaced by `shift`. random_planes: the code and e/z planes are
// then overwritten with random bytes, so every zero 0..255, every code and
// extreme scale codes occur (the kernels must agree on any valid bytes).
struct KTensor {
  std::unique_ptr<Guarded> mem;
  stk::WeightView view;
  stk::LowbitKLayout L;
};

KTensor make_tensor(WeightFormat f, uint32_t group, uint32_t shift, uint32_t rows, uint32_t cols, bool random_planes,
                    uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(rows) * cols);
  for (size_t i = 0; i < w.size(); ++i) w[i] = nd(rng) * (i % 13 == 0 ? 4.f : 1.f) + 0.01f;
  stk::host::FormatSpec spec;
  spec.format = f;
  spec.group = group;
  const stk::host::LowbitTensor q = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, spec);
  uint32_t params[4];
  std::vector<uint8_t> bytes = stk::host::lowbit_pack(q, params);
  params[2] = shift;
  KTensor t;
  EXPECT_TRUE(stk::lowbitk_layout(f, rows, cols, params, &t.L));
  EXPECT_EQ(t.L.total_bytes, bytes.size());
  if (random_planes) {
    for (uint64_t i = 0; i < uint64_t(rows) * t.L.row_code_bytes; ++i) bytes[i] = uint8_t(rng());
    for (uint64_t i = t.L.scales_offset; i < bytes.size(); ++i) bytes[i] = uint8_t(rng());
  }
  t.mem = std::make_unique<Guarded>(bytes.size());
  std::memcpy(t.mem->data(), bytes.data(), bytes.size());
  t.view = stk::WeightView{f, rows, cols, t.mem->data(), bytes.size(), {params[0], params[1], params[2], params[3]}};
  return t;
}

// int8 activations in exactly n * 16 * ceil(cols/16) bytes (the scalar
// kernel's reach) and n * ceil(cols/32) scales, both ending at a guard page.
// Most tokens are a quantized normal sample; every fifth is the extremes
// -128/127, and token 2 (when n > 2) is all zero.
struct KActs {
  std::unique_ptr<Guarded> q, s;
  uint32_t n, groups;
  size_t ldq;
  stk::Activations view() const {
    return stk::Activations{nullptr, 0, n, reinterpret_cast<const int8_t*>(q->data()),
                            reinterpret_cast<const float*>(s->data()), ldq};
  }
  stk::Activations token(uint32_t t) const {
    return stk::Activations{nullptr, 0, 1, reinterpret_cast<const int8_t*>(q->data()) + t * ldq,
                            reinterpret_cast<const float*>(s->data()) + size_t(t) * groups, ldq};
  }
};

KActs make_acts(uint32_t n, uint32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  KActs a;
  a.n = n;
  a.groups = (cols + 31) / 32;
  a.ldq = (cols + 15) / 16 * 16;
  a.q = std::make_unique<Guarded>(a.ldq * n);
  a.s = std::make_unique<Guarded>(sizeof(float) * a.groups * n);
  int8_t* q = reinterpret_cast<int8_t*>(a.q->data());
  float* s = reinterpret_cast<float*>(a.s->data());
  std::memset(q, 0, a.ldq * n);  // padding activations are 0
  std::vector<float> x(cols);
  for (uint32_t t = 0; t < n; ++t) {
    for (uint32_t c = 0; c < cols; ++c) x[c] = nd(rng) * (c % 7 == 0 ? 4.f : 1.f);
    for (uint32_t g = 0; g < a.groups; ++g) {
      const uint32_t c0 = g * 32, c1 = std::min(cols, c0 + 32);
      if (t == 2) {
        s[t * a.groups + g] = 0.f;
        continue;
      }
      if (t % 5 == 4) {
        s[t * a.groups + g] = 0.01f;
        for (uint32_t c = c0; c < c1; ++c) q[t * a.ldq + c] = rng() % 2 ? int8_t(-128) : int8_t(127);
        continue;
      }
      float amax = 0;
      for (uint32_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[c]));
      const float sc = amax / 127.f;
      s[t * a.groups + g] = sc;
      for (uint32_t c = c0; c < c1; ++c) q[t * a.ldq + c] = int8_t(std::lrint(sc > 0 ? x[c] / sc : 0.f));
    }
  }
  return a;
}

// y[t][r] from the bytes, in double, and the magnitude sum_b |xs d| sum_j
// |(2^(8-b) q_j - z) a_j| that bounds the float rounding of any summation order.
void reference(const KTensor& w, const KActs& a, uint32_t r, uint32_t t, double* y, double* mag) {
  const stk::LowbitKLayout& L = w.L;
  const int8_t* aq = a.view().q8 + t * a.ldq;
  const float* as = a.view().q8_scales + size_t(t) * a.groups;
  const uint8_t* codes = w.view.data + uint64_t(r) * L.row_code_bytes;
  const uint8_t* sc = w.view.data + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
  const int32_t qmul = L.ternary ? 1 : int32_t(256u >> L.bits);
  const double unit = L.ternary ? 1.0 : std::ldexp(1.0, int(L.bits) - 8);
  double acc = 0, m = 0;
  for (uint32_t b = 0; b < L.blocks_per_row; ++b) {
    const uint32_t g = b * stk::kLowbitKBlock / L.group;
    const int32_t z = L.ternary ? 1 : sc[L.groups_per_row + g];
    const double f = double(as[b / 2]) * double(stk::lowbitk_scale(L.scale, L.shift, sc[g])) * unit;
    int64_t v = 0, vabs = 0;
    for (uint32_t j = 0; j < stk::kLowbitKBlock; ++j) {
      const int64_t wj = qmul * int64_t(stk::lowbitk_code(codes + b * L.block_bytes, L.bits, j)) - z;
      v += wj * aq[b * stk::kLowbitKBlock + j];
      vabs += std::llabs(wj * aq[b * stk::kLowbitKBlock + j]);
    }
    acc += f * double(v);
    m += std::fabs(f) * double(vabs);
  }
  *y = acc;
  *mag = m;
}

struct Case {
  uint32_t rows, cols, n;
};
// 1 x N, N x 1, 172 wide, cols around 16 and 32, batches that leave 1..3
// tokens after the groups of four and one that takes more than 64.
const Case kCases[] = {{1, 1000, 1}, {1, 172, 70}, {67, 1, 3},  {5, 15, 17},   {3, 16, 70},  {7, 17, 3},
                       {2, 31, 1},   {9, 33, 17},  {64, 172, 3}, {13, 172, 1}, {67, 1000, 17}, {4, 1000, 70},
                       {31, 33, 70}, {1, 1, 1},    {66, 48, 2}};

#endif  // __ARM_NEON

TEST(LowbitK, NeonKernelsMatchScalarAndReference) {
#if !defined(__ARM_NEON)
  GTEST_SKIP() << "no NEON in this build";
#else
  const stk::KernelSet* k = stk::kernels_for(stk::Isa::Neon);
  ASSERT_NE(k, nullptr);
  const WeightFormat formats[] = {WeightFormat::Q4K, WeightFormat::Q3K, WeightFormat::Q2K, WeightFormat::T2K};
  const uint32_t groups[] = {16, 32, 48, 96, 256};
  const float kSentinel = -7.25f;
  uint32_t ci = 0;
  for (WeightFormat f : formats) {
    stk::MatmulFn fn = k->get(f);
    ASSERT_NE(fn, nullptr);
    ASSERT_NE(fn, &stk::matmul_lowbitk_scalar) << "NEON table still files the scalar kernel";
    ASSERT_TRUE(k->wants_q8_activations[uint32_t(f)]);
    for (uint32_t group : groups) {
      for (const Case& cs : kCases) {
        for (bool random_planes : {false, true}) {
          ++ci;
          const uint32_t shift = 2 + ci % 5;
          SCOPED_TRACE(std::string(stk::weight_format_name(f)) + " g" + std::to_string(group) + " s" +
                       std::to_string(shift) + " " + std::to_string(cs.rows) + "x" + std::to_string(cs.cols) +
                       " n" + std::to_string(cs.n) + (random_planes ? " random planes" : ""));
          const KTensor w = make_tensor(f, group, shift, cs.rows, cs.cols, random_planes, ci);
          const KActs a = make_acts(cs.n, cs.cols, ci * 3 + 1);
          const size_t ldy = cs.rows + 2;
          std::vector<float> ys(ldy * cs.n, kSentinel), y(ldy * cs.n, kSentinel);
          stk::matmul_lowbitk_scalar(w.view, a.view(), ys.data(), ldy, 0, cs.rows);
          fn(w.view, a.view(), y.data(), ldy, 0, cs.rows);
          for (uint32_t t = 0; t < cs.n; ++t) {
            for (uint32_t r = 0; r < cs.rows; ++r) {
              double want, mag;
              reference(w, a, r, t, &want, &mag);
              const float got = y[t * ldy + r];
              ASSERT_LE(std::fabs(double(got) - double(ys[t * ldy + r])), 1e-5 * mag) << "vs scalar, r" << r << " t" << t;
              ASSERT_LE(std::fabs(double(got) - want), 1e-5 * mag) << "vs reference, r" << r << " t" << t;
            }
            ASSERT_EQ(y[t * ldy + cs.rows], kSentinel);  // nothing written past r1
          }
          // Row split in three uneven parts, called out of order: same bits,
          // and a middle range writes only its rows.
          const uint32_t cut1 = cs.rows / 3, cut2 = std::min(cs.rows, cs.rows * 2 / 3 + 1);
          std::vector<float> y2(ldy * cs.n, kSentinel);
          fn(w.view, a.view(), y2.data(), ldy, cut2, cs.rows);
          fn(w.view, a.view(), y2.data(), ldy, cut1, cut2);
          for (uint32_t t = 0; t < cs.n; ++t) {
            for (uint32_t r = 0; r < cs.rows; ++r) {
              ASSERT_EQ(y2[t * ldy + r], r >= cut1 ? y[t * ldy + r] : kSentinel) << "row split, r" << r << " t" << t;
            }
          }
          fn(w.view, a.view(), y2.data(), ldy, 0, cut1);
          for (uint32_t t = 0; t < cs.n; ++t)
            for (uint32_t r = 0; r < cs.rows; ++r) ASSERT_EQ(y2[t * ldy + r], y[t * ldy + r]) << "r" << r << " t" << t;
          // Each token alone: the bits of the batch.
          for (uint32_t t = 0; t < cs.n; ++t) {
            std::vector<float> y1(ldy, kSentinel);
            fn(w.view, a.token(t), y1.data(), ldy, 0, cs.rows);
            for (uint32_t r = 0; r < cs.rows; ++r) ASSERT_EQ(y1[r], y[t * ldy + r]) << "token alone, r" << r << " t" << t;
            ASSERT_EQ(y1[cs.rows], kSentinel);
          }
        }
      }
    }
  }
#endif
}

}  // namespace

// Low-bit formats (Q4/Q3/Q2/T2): layout round trip and every kernel against
// independently computed products, on ragged shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/kernels/kernels.h"
#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tools/lowbit_quant.h"

namespace {

using stk::WeightFormat;
using stk::host::FormatSpec;
using stk::host::LowbitTensor;

struct Packed {
  LowbitTensor q;
  std::vector<uint8_t> bytes;  // 64-byte aligned copy lives in `store`
  std::vector<uint64_t> store;
  stk::WeightView view;
};

Packed make(WeightFormat f, uint32_t group, uint32_t rows, uint32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(rows) * cols);
  for (float& v : w) v = nd(rng) + 0.01f;  // a small offset, so the min term matters
  Packed p;
  FormatSpec spec;
  spec.format = f;
  spec.group = group;
  p.q = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, spec);
  uint32_t params[4];
  p.bytes = stk::host::lowbit_pack(p.q, params);
  uint64_t need = 0;
  EXPECT_TRUE(stk::weight_format_bytes(f, rows, cols, params, &need));
  EXPECT_EQ(need, p.bytes.size());
  p.store.assign((p.bytes.size() + 7) / 8 + 8, 0);
  uint8_t* base = reinterpret_cast<uint8_t*>(p.store.data());
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
  std::memcpy(base, p.bytes.data(), p.bytes.size());
  p.view = stk::WeightView{f, rows, cols, base, p.bytes.size(), {params[0], params[1], params[2], params[3]}};
  return p;
}

// The int8 copy of activations the runtime makes (groups of 32, amax/127),
// written here from the contract in runtime/kernels/matmul.h.
struct Acts {
  std::vector<float> x, xq, scales;
  std::vector<int8_t> q;
  size_t ld, ldq;
  uint32_t n, cols;
  stk::Activations view() const { return stk::Activations{x.data(), ld, n, q.data(), scales.data(), ldq}; }
};

Acts make_acts(uint32_t n, uint32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  Acts a;
  a.n = n, a.cols = cols, a.ld = cols + 3, a.ldq = (cols + 63) / 64 * 64;
  const uint32_t groups = (cols + 31) / 32;
  a.x.assign(a.ld * n, 0.f);
  a.xq.assign(a.ld * n, 0.f);
  a.q.assign(a.ldq * n, 0);
  a.scales.assign(size_t(groups) * n, 0.f);
  for (uint32_t t = 0; t < n; ++t) {
    for (uint32_t c = 0; c < cols; ++c) a.x[t * a.ld + c] = nd(rng) * (c % 7 == 0 ? 4.f : 1.f);
    for (uint32_t g = 0; g < groups; ++g) {
      float amax = 0;
      for (uint32_t c = g * 32; c < std::min(cols, g * 32 + 32); ++c) amax = std::max(amax, std::fabs(a.x[t * a.ld + c]));
      const float s = amax / 127.f;
      a.scales[t * groups + g] = s;
      for (uint32_t c = g * 32; c < std::min(cols, g * 32 + 32); ++c) {
        const int v = int(std::lrint(s > 0 ? a.x[t * a.ld + c] / s : 0.f));
        a.q[t * a.ldq + c] = int8_t(v);
        a.xq[t * a.ld + c] = float(v) * s;
      }
    }
  }
  return a;
}

struct Shape {
  uint32_t rows, cols, n;
};
const Shape kShapes[] = {{1, 1, 1}, {1, 300, 1}, {37, 1, 2}, {5, 64, 1}, {7, 172, 3}, {13, 33, 2},
                         {3, 257, 1}, {64, 172, 4}, {172, 64, 1}, {2, 31, 5}, {3, 600, 2}, {4, 1000, 1}};
const WeightFormat kFormats[] = {WeightFormat::Q4, WeightFormat::Q3, WeightFormat::Q2, WeightFormat::T2};

TEST(Lowbit, DequantizeRowMatchesHostDecode) {
  for (WeightFormat f : kFormats) {
    for (uint32_t g : {32u, 64u, 256u}) {
      for (const Shape& s : kShapes) {
        Packed p = make(f, g, s.rows, s.cols, s.rows * 31 + s.cols);
        std::vector<float> row(s.cols);
        for (uint32_t r = 0; r < s.rows; ++r) {
          stk::weight_dequantize_row(p.view, r, row.data());
          for (uint32_t c = 0; c < s.cols; ++c) ASSERT_EQ(row[c], p.q.value(r, c)) << int(f) << " " << r << "," << c;
        }
      }
    }
  }
}

TEST(Lowbit, ByteSizeValidation) {
  uint64_t out = 0;
  const uint32_t bad_group[4] = {48, 0, 0, 0}, bad_param[4] = {32, 1, 0, 0}, ok[4] = {32, 0, 0, 0};
  EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q4, 4, 64, bad_group, &out));
  EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q4, 4, 64, bad_param, &out));
  // The largest shape still has an exact size (no wrap-around).
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q4, 0xFFFFFFFFu, 0xFFFFFFFFu, ok, &out));
  EXPECT_EQ(out, 0xFFFFFFFFull * (1ull << 31) + 0xFFFFFFFFull * (1ull << 27) * 4);
  // 7 x 172, group 32: 6 blocks of 16 bytes per row, 6 groups of (d, m) fp16.
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q4, 7, 172, ok, &out));
  EXPECT_EQ(out, 7u * 96u + 64u /* 672 -> 704 aligned */ - 32u + 7u * 24u);
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::T2, 1, 64, ok, &out));
  EXPECT_EQ(out, 64u + 4u);  // 2 blocks x 8 bytes, aligned to 64, then 2 fp16 scales
}

// Every kernel of every ISA this CPU runs vs. sums computed here in double
// from the host-side decode of the codes and the int8 activations.
TEST(Lowbit, KernelsMatchIndependentReference) {
  std::vector<const stk::KernelSet*> sets = {&stk::kernel_table_scalar()};
  for (stk::Isa isa : {stk::Isa::Avx2, stk::Isa::Avx512, stk::Isa::Neon}) {
    if (const stk::KernelSet* k = stk::kernels_for(isa)) sets.push_back(k);
  }
  for (WeightFormat f : kFormats) {
    for (uint32_t g : {32u, 64u, 128u, 256u}) {
      for (const Shape& s : kShapes) {
        Packed p = make(f, g, s.rows, s.cols, s.rows * 7 + s.cols + g);
        Acts a = make_acts(s.n, s.cols, s.cols + 5);
        const size_t ldy = s.rows + 2;
        std::vector<double> want(ldy * s.n), mag(ldy * s.n);
        for (uint32_t t = 0; t < s.n; ++t)
          for (uint32_t r = 0; r < s.rows; ++r) {
            double acc = 0, m = 0;
            for (uint32_t c = 0; c < s.cols; ++c) {
              acc += double(p.q.value(r, c)) * a.xq[t * a.ld + c];
              m += std::fabs(double(p.q.value(r, c)) * a.xq[t * a.ld + c]);
            }
            want[t * ldy + r] = acc;
            mag[t * ldy + r] = m;
          }
        for (const stk::KernelSet* k : sets) {
          ASSERT_TRUE(k->wants_q8_activations[uint32_t(f)]);
          stk::MatmulFn fn = k->get(f);
          ASSERT_NE(fn, nullptr);
          std::vector<float> y(ldy * s.n, -1.f), y2(ldy * s.n, -1.f);
          fn(p.view, a.view(), y.data(), ldy, 0, s.rows);
          // Split rows at an odd point: results must be bit-identical.
          const uint32_t mid = s.rows / 3;
          fn(p.view, a.view(), y2.data(), ldy, 0, mid);
          fn(p.view, a.view(), y2.data(), ldy, mid, s.rows);
          for (uint32_t t = 0; t < s.n; ++t)
            for (uint32_t r = 0; r < s.rows; ++r) {
              ASSERT_NEAR(y[t * ldy + r], want[t * ldy + r], 1e-5 * mag[t * ldy + r] + 1e-6)
                  << k->name << " " << stk::weight_format_name(f) << " g" << g << " " << s.rows << "x" << s.cols
                  << " r" << r << " t" << t;
              ASSERT_EQ(y[t * ldy + r], y2[t * ldy + r]);
            }
          EXPECT_EQ(y[s.rows], -1.f);  // nothing written outside [r0, r1)
        }
        // The float-activation reference uses x itself.
        std::vector<float> y(ldy * s.n);
        stk::matmul_lowbit_f32act_scalar(p.view, a.view(), y.data(), ldy, 0, s.rows);
        for (uint32_t t = 0; t < s.n; ++t)
          for (uint32_t r = 0; r < s.rows; ++r) {
            double acc = 0, m = 0;
            for (uint32_t c = 0; c < s.cols; ++c) {
              acc += double(p.q.value(r, c)) * a.x[t * a.ld + c];
              m += std::fabs(double(p.q.value(r, c)) * a.x[t * a.ld + c]);
            }
            ASSERT_NEAR(y[t * ldy + r], acc, 1e-5 * m + 1e-6);
          }
      }
    }
  }
}

}  // namespace

// The x86 kernels for Q4K, Q3K, Q2K, T2K (lowbitk_avx2.cpp, lowbitk_avx512.cpp)
// against the portable scalar kernel: ragged shapes, every group size class,
// every log step, row splits and batches. Weights and activations sit at the
// very end of their buffers, before an inaccessible page, so a read past the
// tensor or past the activation rows faults.
#include <gtest/gtest.h>

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

#if defined(__x86_64__)
namespace {

using stk::WeightFormat;
using stk::test::Guarded;

// A host-quantized K tensor, then its log step replaced by `shift` (the same
// codes then mean other, still valid, scales).
struct KTensor {
  std::vector<uint8_t> bytes;
  uint32_t params[4];
  std::unique_ptr<Guarded> mem;
  stk::WeightView view;
};

std::unique_ptr<KTensor> make_k(WeightFormat f, uint32_t group, uint32_t shift, uint32_t rows, uint32_t cols,
                                uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(rows) * cols);
  for (size_t i = 0; i < w.size(); ++i) w[i] = nd(rng) * (i % 13 == 0 ? 6.f : 1.f) + 0.01f;
  auto t = std::make_unique<KTensor>();
  stk::host::FormatSpec spec;
  spec.format = f;
  spec.group = group;
  const stk::host::LowbitTensor q = stk::host::lowbit_quantize_rtn(w.data(), rows, cols, spec);
  t->bytes = stk::host::lowbit_pack(q, t->params);
  t->params[2] = shift;
  uint64_t need = 0;
  EXPECT_TRUE(stk::weight_format_bytes(f, rows, cols, t->params, &need));
  EXPECT_EQ(need, t->bytes.size());
  t->mem = std::make_unique<Guarded>(t->bytes.size());
  std::memcpy(t->mem->data(), t->bytes.data(), t->bytes.size());
  t->view = stk::WeightView{f, rows, cols, t->mem->data(), t->bytes.size(),
                            {t->params[0], t->params[1], t->params[2], t->params[3]}};
  return t;
}

// int8 activations as the forward pass makes them, rows exactly
// ceil(cols/32)*32 long (the least the contract allows), zero padded.
struct KActs {
  uint32_t n, cols, groups;
  size_t ldq;
  std::unique_ptr<Guarded> q, s;
  std::vector<float> x;
  stk::Activations view() const {
    return stk::Activations{x.data(), cols, n, reinterpret_cast<const int8_t*>(q->data()),
                            reinterpret_cast<const float*>(s->data()), ldq};
  }
  // Token t alone, a batch of one.
  stk::Activations one(uint32_t t) const {
    return stk::Activations{x.data() + size_t(t) * cols, cols, 1,
                            reinterpret_cast<const int8_t*>(q->data()) + t * ldq,
                            reinterpret_cast<const float*>(s->data()) + size_t(t) * groups, ldq};
  }
};

std::unique_ptr<KActs> make_k_acts(uint32_t n, uint32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> qd(-127, 127);
  std::uniform_real_distribution<float> sd(0.001f, 0.05f);
  auto a = std::make_unique<KActs>();
  a->n = n, a->cols = cols, a->groups = (cols + 31) / 32, a->ldq = size_t(a->groups) * 32;
  a->x.assign(size_t(n) * cols, 0.f);  // unused by int8 kernels
  a->q = std::make_unique<Guarded>(a->ldq * n);
  a->s = std::make_unique<Guarded>(sizeof(float) * a->groups * n);
  int8_t* q = reinterpret_cast<int8_t*>(a->q->data());
  float* s = reinterpret_cast<float*>(a->s->data());
  for (uint32_t t = 0; t < n; ++t) {
    for (size_t c = 0; c < a->ldq; ++c) q[t * a->ldq + c] = c < cols ? int8_t(qd(rng)) : 0;
    for (uint32_t g = 0; g < a->groups; ++g) s[size_t(t) * a->groups + g] = sd(rng);
  }
  return a;
}

struct Impl {
  const char* name;
  stk::MatmulFn fn[4];  // Q4K, Q3K, Q2K, T2K
};

TEST(LowbitK, X86KernelsOnRaggedShapesSplitsAndBatches) {
  std::vector<Impl> impls;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    impls.push_back({"avx2",
                     {stk::lowbitk_avx2::matmul_q4k, stk::lowbitk_avx2::matmul_q3k, stk::lowbitk_avx2::matmul_q2k,
                      stk::lowbitk_avx2::matmul_t2k}});
  }
  if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    impls.push_back({"vnni",
                     {stk::lowbitk_vnni::matmul_q4k, stk::lowbitk_vnni::matmul_q3k, stk::lowbitk_vnni::matmul_q2k,
                      stk::lowbitk_vnni::matmul_t2k}});
  }
  if (impls.empty()) GTEST_SKIP() << "no AVX2 or AVX-512 VNNI on this CPU";

  const WeightFormat formats[] = {WeightFormat::Q4K, WeightFormat::Q3K, WeightFormat::Q2K, WeightFormat::T2K};
  // The tables file these kernels (the AVX-512 table only with VNNI).
  for (int i = 0; i < 4; ++i) {
    if (const stk::KernelSet* k = stk::kernels_for(stk::Isa::Avx2)) {
      EXPECT_EQ(k->get(formats[i]), impls[0].fn[i]);
      EXPECT_TRUE(k->wants_q8_activations[uint32_t(formats[i])]);
    }
    if (const stk::KernelSet* k = stk::kernels_for(stk::Isa::Avx512); k && impls.size() == 2) {
      EXPECT_EQ(k->get(formats[i]), impls[1].fn[i]);
    }
  }

  struct Shape {
    uint32_t rows, cols;
  };
  // 1xN, Nx1, 172 wide, ragged column counts around 16 and 32, rows 1..67,
  // and rows wider than one 8192-column stripe.
  const Shape shapes[] = {{1, 1000}, {67, 1},  {7, 172},  {5, 15},   {3, 16},   {9, 17},    {2, 31},
                          {13, 33},  {64, 172}, {1, 172}, {40, 1000}, {31, 48}, {3, 8200},  {2, 16400}};
  const uint32_t groups[] = {16, 32, 48, 96, 256};
  const uint32_t batches[] = {1, 3, 17, 70};
  uint32_t cases = 0;
  for (int fi = 0; fi < 4; ++fi) {
    const WeightFormat f = formats[fi];
    for (uint32_t g : groups) {
      for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; ++si) {
        const Shape s = shapes[si];
        const uint32_t shift = 2 + uint32_t(si + g / 16 + fi) % 5;  // every log step 2..6 across cases
        const uint32_t n = s.cols > 4000 ? uint32_t(1 + si % 5) : batches[(si + g / 16) % 4];
        SCOPED_TRACE(std::string(stk::weight_format_name(f)) + " g" + std::to_string(g) + " s" +
                     std::to_string(shift) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols) + " n" +
                     std::to_string(n));
        auto w = make_k(f, g, shift, s.rows, s.cols, 17 * s.rows + s.cols + g + uint32_t(fi));
        auto a = make_k_acts(n, s.cols, s.cols + 7 * n);
        const size_t ldy = s.rows + 3;
        std::vector<float> ref(ldy * n, -1.f);
        stk::matmul_lowbitk_scalar(w->view, a->view(), ref.data(), ldy, 0, s.rows);
        // Magnitude of each product's terms, for the tolerance.
        std::vector<float> row(s.cols);
        std::vector<double> mag(size_t(s.rows) * n, 0.0);
        const int8_t* q = reinterpret_cast<const int8_t*>(a->q->data());
        const float* sc = reinterpret_cast<const float*>(a->s->data());
        for (uint32_t r = 0; r < s.rows; ++r) {
          stk::weight_dequantize_row(w->view, r, row.data());
          for (uint32_t t = 0; t < n; ++t)
            for (uint32_t c = 0; c < s.cols; ++c)
              mag[size_t(r) * n + t] += std::fabs(double(row[c]) * q[t * a->ldq + c] * sc[t * a->groups + c / 32]);
        }
        for (const Impl& im : impls) {
          SCOPED_TRACE(im.name);
          const stk::MatmulFn fn = im.fn[fi];
          std::vector<float> y(ldy * n, -1.f), y2(ldy * n, -2.f);
          fn(w->view, a->view(), y.data(), ldy, 0, s.rows);
          // Split rows: upper part first, then an odd-sized middle and the head.
          const uint32_t m1 = s.rows / 3, m2 = (2 * s.rows + 1) / 3;
          fn(w->view, a->view(), y2.data(), ldy, m2, s.rows);
          fn(w->view, a->view(), y2.data(), ldy, m1, m2);
          for (uint32_t t = 0; t < n; ++t)
            for (uint32_t r = 0; r < m1; ++r) ASSERT_EQ(y2[t * ldy + r], -2.f) << "wrote outside [r0, r1), r" << r;
          fn(w->view, a->view(), y2.data(), ldy, 0, m1);
          for (uint32_t t = 0; t < n; ++t) {
            std::vector<float> y1(ldy, -3.f);
            fn(w->view, a->one(t), y1.data(), ldy, 0, s.rows);
            for (uint32_t r = 0; r < s.rows; ++r) {
              const float v = y[t * ldy + r];
              ASSERT_NEAR(v, ref[t * ldy + r], 1e-5 * mag[size_t(r) * n + t] + 1e-30) << "r" << r << " t" << t;
              ASSERT_EQ(v, y2[t * ldy + r]) << "row split changed r" << r << " t" << t;
              ASSERT_EQ(v, y1[r]) << "batch changed r" << r << " t" << t;
            }
            for (uint32_t r = s.rows; r < ldy; ++r) {
              ASSERT_EQ(y[t * ldy + r], -1.f);
              ASSERT_EQ(y1[r], -3.f);
            }
          }
        }
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 4u * 5u * (sizeof shapes / sizeof shapes[0]));
}

}  // namespace
#endif

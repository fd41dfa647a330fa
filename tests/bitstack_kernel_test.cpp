// BitStack building blocks against independent references: the truncated SVD
// against exact Jacobi and the Eckart-Young bound, the decomposition's
// residual bookkeeping, and the packed-sign kernels against a dense
// reconstruction on ragged shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "runtime/bitstack_format.h"
#include "runtime/block_pool.h"
#include "runtime/half.h"
#include "runtime/kernels/kernels.h"
#include "tools/bitstack_decompose.h"
#include "tools/svd.h"

namespace stk::host {
namespace {

std::vector<double> random_matrix(uint32_t m, uint32_t n, uint32_t seed, bool decaying = false) {
  std::mt19937 g(seed);
  std::normal_distribution<double> nd;
  std::vector<double> a(size_t(m) * n);
  for (double& x : a) x = nd(g);
  if (decaying) {  // A = sum_j 2^-j x_j y_j^T: a clear spectral gap
    std::fill(a.begin(), a.end(), 0.0);
    for (uint32_t j = 0; j < std::min(m, n); ++j) {
      std::vector<double> x(m), y(n);
      for (double& v : x) v = nd(g);
      for (double& v : y) v = nd(g);
      for (uint32_t i = 0; i < m; ++i)
        for (uint32_t k = 0; k < n; ++k) a[size_t(i) * n + k] += std::pow(0.5, j) * x[i] * y[k];
    }
  }
  return a;
}

TEST(Svd, JacobiReconstructsAndIsOrthonormal) {
  for (auto [m, n] : {std::pair{7u, 5u}, std::pair{5u, 9u}, std::pair{1u, 6u}, std::pair{12u, 12u}}) {
    std::vector<double> a = random_matrix(m, n, m * 31 + n);
    Svd s = svd_jacobi(a.data(), m, n);
    ASSERT_EQ(s.k, std::min(m, n));
    for (uint32_t i = 0; i < m; ++i) {
      for (uint32_t j = 0; j < n; ++j) {
        double r = 0;
        for (uint32_t k = 0; k < s.k; ++k) r += s.u[k * m + i] * s.s[k] * s.v[k * n + j];
        EXPECT_NEAR(r, a[i * n + j], 1e-10) << m << "x" << n;
      }
    }
    for (uint32_t p = 0; p < s.k; ++p) {
      if (p > 0) EXPECT_GE(s.s[p - 1], s.s[p]);
      for (uint32_t q = 0; q < s.k; ++q) {
        double du = 0, dv = 0;
        for (uint32_t i = 0; i < m; ++i) du += s.u[p * m + i] * s.u[q * m + i];
        for (uint32_t j = 0; j < n; ++j) dv += s.v[p * n + j] * s.v[q * n + j];
        EXPECT_NEAR(du, p == q ? 1.0 : 0.0, 1e-10);
        EXPECT_NEAR(dv, p == q ? 1.0 : 0.0, 1e-10);
      }
    }
  }
}

TEST(Svd, TruncatedMatchesJacobiAndEckartYoung) {
  for (auto [m, n, k] : {std::tuple{60u, 40u, 3u}, std::tuple{40u, 90u, 5u}, std::tuple{64u, 172u, 1u}}) {
    for (bool decaying : {true, false}) {
      std::vector<double> a = random_matrix(m, n, m + n + k, decaying);
      Svd ex = svd_jacobi(a.data(), m, n);
      Svd tr = svd_truncated(a.data(), m, n, k, 6, 3);
      ASSERT_EQ(tr.k, k);
      // Error of the rank-k approximation vs the optimum sqrt(sum_{j>=k} s_j^2).
      double err = 0, opt = 0;
      for (uint32_t j = k; j < ex.k; ++j) opt += ex.s[j] * ex.s[j];
      for (uint32_t i = 0; i < m; ++i) {
        for (uint32_t j = 0; j < n; ++j) {
          double r = 0;
          for (uint32_t q = 0; q < k; ++q) r += tr.u[q * m + i] * tr.s[q] * tr.v[q * n + j];
          err += (a[i * n + j] - r) * (a[i * n + j] - r);
        }
      }
      if (decaying) {
        for (uint32_t q = 0; q < k; ++q) EXPECT_NEAR(tr.s[q], ex.s[q], 1e-8 * ex.s[0]);
        EXPECT_NEAR(std::sqrt(err), std::sqrt(opt), 1e-8 * ex.s[0]);
      } else {  // flat spectrum: still within 1% of the optimum
        EXPECT_LE(std::sqrt(err), 1.01 * std::sqrt(opt));
        for (uint32_t q = 0; q < k; ++q) EXPECT_NEAR(tr.s[q], ex.s[q], 0.02 * ex.s[0]);
      }
    }
  }
}

TEST(BitStackDecompose, ResidualShrinksAndBlocksSumToTheWeights) {
  const uint32_t rows = 24, cols = 37;
  std::vector<double> a = random_matrix(rows, cols, 5);
  std::vector<float> w(a.begin(), a.end());
  w[3] = 0.0f;  // sign(0) must be +1
  auto blocks = bitstack_decompose(w.data(), rows, cols, 12, 2);
  ASSERT_EQ(blocks.size(), 12u);
  EXPECT_EQ(blocks[0].signs[0] & 8, 8);
  std::vector<float> sum(w.size(), 0.0f);
  for (size_t b = 0; b < blocks.size(); ++b) {
    EXPECT_LT(blocks[b].residual_after, blocks[b].residual_before);
    if (b > 0) EXPECT_NEAR(blocks[b].residual_before, blocks[b - 1].residual_after, 1e-9 * blocks[0].residual_before);
    bitstack_block_accumulate(blocks[b], rows, cols, sum.data());
    double e = 0;
    for (size_t i = 0; i < w.size(); ++i) e += double(w[i] - sum[i]) * (w[i] - sum[i]);
    EXPECT_NEAR(e, blocks[b].residual_after, 1e-4 * blocks[0].residual_before) << "block " << b;
  }
  EXPECT_LT(blocks.back().residual_after, 0.01 * blocks[0].residual_before);
}

// Second moments of inputs with strongly correlated channels (x = A z, z
// white): the case where fitting the output differs most from fitting the
// weights.
std::vector<double> correlated_hessian(uint32_t cols, uint32_t seed) {
  std::vector<double> A = random_matrix(cols, cols / 2, seed), H(size_t(cols) * cols, 0.0);
  for (uint32_t i = 0; i < cols; ++i)
    for (uint32_t j = 0; j < cols; ++j) {
      double s = i == j ? 0.05 : 0.0;  // a little white noise keeps H definite
      for (uint32_t k = 0; k < cols / 2; ++k) s += A[size_t(i) * (cols / 2) + k] * A[size_t(j) * (cols / 2) + k];
      H[size_t(i) * cols + j] = s;
    }
  return H;
}

// sum_r e_r H e_r^T of e = w - (sum of the first `n` blocks), from the dense blocks.
double output_error(const std::vector<float>& w, const std::vector<BitStackBlock>& blocks, size_t n, uint32_t rows,
                    uint32_t cols, const std::vector<double>& H) {
  std::vector<float> sum(w.size(), 0.0f);
  for (size_t b = 0; b < n; ++b) bitstack_block_accumulate(blocks[b], rows, cols, sum.data());
  double total = 0;
  for (uint32_t r = 0; r < rows; ++r)
    for (uint32_t i = 0; i < cols; ++i)
      for (uint32_t j = 0; j < cols; ++j)
        total += (double(w[size_t(r) * cols + i]) - sum[size_t(r) * cols + i]) * H[size_t(i) * cols + j] *
                 (double(w[size_t(r) * cols + j]) - sum[size_t(r) * cols + j]);
  return total;
}

TEST(BitStackDecompose, OutputFitLowersTheOutputErrorOfEveryPrefix) {
  const uint32_t rows = 40, cols = 48, iters = 6;
  std::vector<double> a = random_matrix(rows, cols, 11);
  const std::vector<float> w(a.begin(), a.end());
  const std::vector<double> H = correlated_hessian(cols, 12);
  std::vector<double> diag(cols);
  for (uint32_t j = 0; j < cols; ++j) diag[j] = H[size_t(j) * cols + j];
  const auto by_weights = bitstack_decompose(w.data(), rows, cols, iters, 1, diag.data());
  BitStackHessian greedy;
  greedy.h = H.data();
  greedy.lookahead = false;
  const auto by_output = bitstack_decompose(w.data(), rows, cols, iters, 1, nullptr, &greedy);
  BitStackHessian ahead = greedy;
  ahead.lookahead = true;
  const auto looking = bitstack_decompose(w.data(), rows, cols, iters, 1, nullptr, &ahead);
  ASSERT_EQ(by_output.size(), iters);
  ASSERT_EQ(looking.size(), iters);
  double log_greedy = 0, log_ahead = 0;
  for (size_t n = 1; n <= iters; ++n) {
    const double ew = output_error(w, by_weights, n, rows, cols, H);
    const double eo = output_error(w, by_output, n, rows, cols, H);
    const double el = output_error(w, looking, n, rows, cols, H);
    // The reported residuals are the output error (fp16 factors included).
    EXPECT_NEAR(by_output[n - 1].residual_after, eo, 1e-6 * by_output[0].residual_before) << n;
    EXPECT_NEAR(looking[n - 1].residual_after, el, 1e-6 * looking[0].residual_before) << n;
    EXPECT_LT(eo, 0.9 * ew) << "prefix " << n << ": fitted to the output, against fitted to the weights";
    if (n >= 3) log_greedy += std::log(eo), log_ahead += std::log(el);
    if (n == 1) EXPECT_LT(el, 1.1 * eo) << "look-ahead gives up little on the first block";
  }
  EXPECT_LT(log_ahead, log_greedy) << "look-ahead lowers the error of the deeper prefixes";
}

TEST(BitStackDecompose, DefaultRankRule) {
  EXPECT_EQ(bitstack_default_rank(64, 64), 1u);
  EXPECT_EQ(bitstack_default_rank(768, 768), 3u);
  EXPECT_EQ(bitstack_default_rank(4096, 4096), 16u);
  EXPECT_EQ(bitstack_default_rank(4096, 11008), 16u);
}

// A tensor of encoded blocks in 64-byte aligned memory.
struct TestTensor {
  uint32_t rows, cols;
  std::vector<float> scale;
  std::vector<std::vector<uint8_t>> encoded;
  std::vector<uint8_t*> mem;
  std::vector<const uint8_t*> ptrs;
  BitStackTensor t{};
  WeightView view{};
  std::vector<float> dense;  // sum of the blocks' weights
  ~TestTensor() {
    for (uint8_t* p : mem) std::free(p);
  }
};

void build(TestTensor* tt, uint32_t rows, uint32_t cols, uint32_t n_blocks, uint32_t seed) {
  tt->rows = rows;
  tt->cols = cols;
  std::vector<double> a = random_matrix(rows, cols, seed);
  std::vector<float> w(a.begin(), a.end());
  tt->dense.assign(w.size(), 0.0f);
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> ud(0.25f, 4.0f);
  tt->scale.resize(cols);
  const bool with_scale = seed % 2 == 1;  // even seeds: no input scale (null = ones)
  for (float& s : tt->scale) s = with_scale ? ud(g) : 1.0f;
  for (uint32_t b = 0; b < n_blocks; ++b) {
    const uint32_t rank = std::min({1 + b % 3, rows, cols});
    auto bl = bitstack_decompose(w.data(), rows, cols, 1, rank);
    bitstack_block_accumulate(bl[0], rows, cols, tt->dense.data());
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(a[i]) - tt->dense[i];
    std::vector<uint8_t> e = bitstack_encode_block(bl[0], 0, TensorRole::Wq, b, rows, cols);
    uint8_t* p = static_cast<uint8_t*>(std::aligned_alloc(64, e.size()));
    std::memcpy(p, e.data(), e.size());
    tt->mem.push_back(p);
    tt->ptrs.push_back(p);
  }
  tt->t = BitStackTensor{with_scale ? tt->scale.data() : nullptr, tt->ptrs.data(), n_blocks, rows, cols};
  tt->view = WeightView{WeightFormat::BitStack, rows, cols, reinterpret_cast<const uint8_t*>(&tt->t), 0, {n_blocks, 0, 0, 0}};
}

TEST(BitStackKernel, MatchesDenseReconstructionOnRaggedShapes) {
  // (name, kernel, tolerance relative to sum_c |W x| of the row): the f32
  // kernels are exact up to rounding; the VNNI kernel quantizes z to int8.
  struct K {
    const char* name;
    MatmulFn fn;
    double tol;
  };
  std::vector<K> sets = {{"scalar", matmul_bitstack_scalar, 1e-5}};
#if defined(__x86_64__)
  if (kernels_for(Isa::Avx512) != nullptr) {
    sets.push_back({"avx512", matmul_bitstack_avx512, 1e-5});
    if (__builtin_cpu_supports("avx512vnni")) sets.push_back({"vnni", matmul_bitstack_vnni, 2e-2});
  }
#endif
#if defined(__ARM_NEON)
  sets.push_back({"neon-f32", matmul_bitstack_neon, 1e-5});  // also filed as the neon table's entry below
#endif
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Neon}) {  // whatever each table files for BitStack
    if (const KernelSet* k = kernels_for(isa)) sets.push_back({k->name, k->get(WeightFormat::BitStack), 2e-2});
  }
  const uint32_t shapes[][2] = {{1, 1}, {5, 13}, {3, 16}, {37, 300}, {64, 172}, {172, 64}, {9, 513}, {33, 257}};
  uint32_t seed = 1;
  for (auto& sh : shapes) {
    TestTensor tt;
    build(&tt, sh[0], sh[1], 4, seed++);
    const uint32_t n = 3, ldx = sh[1] + 5, ldy = sh[0] + 2;
    std::vector<float> x(size_t(n) * ldx);
    std::mt19937 g(seed);
    std::normal_distribution<float> nd;
    for (float& v : x) v = nd(g);
    std::vector<double> ref(size_t(n) * ldy, 0.0);
    double scale = 0;
    for (uint32_t t = 0; t < n; ++t) {
      for (uint32_t r = 0; r < sh[0]; ++r) {
        double acc = 0, mag = 0;
        for (uint32_t c = 0; c < sh[1]; ++c) {
          const double p = double(tt.dense[size_t(r) * sh[1] + c]) * tt.scale[c] * x[t * ldx + c];
          acc += p;
          mag += std::fabs(p);
        }
        ref[t * ldy + r] = acc;
        scale = std::max(scale, mag);
      }
    }
    Activations act{x.data(), ldx, n, nullptr, nullptr, 0};
    for (const K& ks : sets) {
      MatmulFn fn = ks.fn;
      ASSERT_NE(fn, nullptr) << ks.name;
      std::vector<float> y(size_t(n) * ldy, -7.0f), y2(size_t(n) * ldy, -7.0f);
      fn(tt.view, act, y.data(), ldy, 0, sh[0]);
      // Split rows like the thread pool does: results must be bit-identical.
      const uint32_t mid = sh[0] / 2;
      fn(tt.view, act, y2.data(), ldy, 0, mid);
      fn(tt.view, act, y2.data(), ldy, mid, sh[0]);
      for (uint32_t t = 0; t < n; ++t) {
        for (uint32_t r = 0; r < sh[0]; ++r) {
          EXPECT_NEAR(y[t * ldy + r], ref[t * ldy + r], ks.tol * scale + 1e-6) << ks.name << " " << sh[0] << "x" << sh[1];
          EXPECT_EQ(y[t * ldy + r], y2[t * ldy + r]);
        }
        for (uint32_t r = sh[0]; r < ldy; ++r) EXPECT_EQ(y[t * ldy + r], -7.0f) << "wrote outside its rows";
      }
    }
  }
}

TEST(BitStackKernel, FewerResidentBlocksMeansThatPrefix) {
  TestTensor tt;
  build(&tt, 20, 70, 5, 77);
  std::vector<float> x(70, 1.0f);
  Activations act{x.data(), 70, 1, nullptr, nullptr, 0};
  MatmulFn fn = kernels_for(Isa::Scalar)->get(WeightFormat::BitStack);
  std::vector<float> y_all(20), y_two(20), y_ref(20);
  fn(tt.view, act, y_all.data(), 20, 0, 20);
  tt.t.n_loaded = 2;
  fn(tt.view, act, y_two.data(), 20, 0, 20);
  // Dense reference of the first two blocks only.
  TestTensor t2;
  build(&t2, 20, 70, 2, 77);
  fn(t2.view, act, y_ref.data(), 20, 0, 20);
  for (int r = 0; r < 20; ++r) EXPECT_EQ(y_two[r], y_ref[r]);
  EXPECT_NE(y_all, y_two);
}

}  // namespace
}  // namespace stk::host

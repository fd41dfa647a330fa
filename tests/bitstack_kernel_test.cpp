// BitStack building blocks against independent references: the truncated SVD
// against exact Jacobi and the Eckart-Young bound, the decomposition's
// residual bookkeeping, and the packed-sign kernels against a dense
// reconstruction on ragged shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>
#include <stdexcept>
#include <vector>

#include "runtime/bitstack_format.h"
#include "runtime/bitstack_signs16.h"
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

// An output-fitting problem: random weights (seed) and the correlated
// second moments of their inputs (seed + 1).
std::pair<std::vector<float>, std::vector<double>> output_fit_problem(uint32_t rows, uint32_t cols, uint32_t seed) {
  const std::vector<double> a = random_matrix(rows, cols, seed);
  return {std::vector<float>(a.begin(), a.end()), correlated_hessian(cols, seed + 1)};
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

// Budget bytes of the first n blocks.
uint64_t prefix_bytes(const std::vector<BitStackBlock>& blocks, size_t n, uint32_t rows, uint32_t cols) {
  uint64_t total = 0;
  for (size_t b = 0; b < n; ++b) total += bitstack_block_bytes(blocks[b], rows, cols);
  return total;
}

// The output error of the longest prefix of `blocks` within `bytes`.
double error_within(const std::vector<float>& w, const std::vector<BitStackBlock>& blocks, uint64_t bytes,
                    uint32_t rows, uint32_t cols, const std::vector<double>& H) {
  size_t n = 0;
  while (n < blocks.size() && prefix_bytes(blocks, n + 1, rows, cols) <= bytes) ++n;
  return output_error(w, blocks, n, rows, cols, H);
}

TEST(BitStackDecompose, OutputFitLowersTheOutputErrorAtEveryBudget) {
  const uint32_t rows = 40, cols = 48, iters = 6;
  const auto [w, H] = output_fit_problem(rows, cols, 11);
  std::vector<double> diag(cols);
  for (uint32_t j = 0; j < cols; ++j) diag[j] = H[size_t(j) * cols + j];
  const auto by_weights = bitstack_decompose(w.data(), rows, cols, iters, 1, diag.data());
  BitStackHessian greedy;
  greedy.h = H.data();
  greedy.lookahead = false;
  const auto by_output = bitstack_decompose(w.data(), rows, cols, 2 * iters, 1, nullptr, &greedy);
  BitStackHessian ahead = greedy;
  ahead.lookahead = true;
  const auto looking = bitstack_decompose(w.data(), rows, cols, 2 * iters, 1, nullptr, &ahead);
  for (const auto* blocks : {&by_output, &looking}) {
    ASSERT_EQ(blocks->size(), 2 * iters);
    EXPECT_EQ((*blocks)[0].kind, kBitStackKindLowRank);  // block 0 always has factors of its own
    for (size_t n = 1; n <= blocks->size(); ++n) {  // the reported residuals are the output error
      EXPECT_NEAR((*blocks)[n - 1].residual_after, output_error(w, *blocks, n, rows, cols, H),
                  1e-6 * (*blocks)[0].residual_before) << n;
    }
  }
  double log_greedy = 0, log_ahead = 0;
  for (size_t n = 1; n <= iters; ++n) {  // at the bytes of each prefix of the weight fit
    const uint64_t bytes = prefix_bytes(by_weights, n, rows, cols);
    const double ew = output_error(w, by_weights, n, rows, cols, H);
    const double eo = error_within(w, by_output, bytes, rows, cols, H);
    const double el = error_within(w, looking, bytes, rows, cols, H);
    EXPECT_LT(eo, 0.9 * ew) << bytes << " bytes: fitted to the output, against fitted to the weights";
    if (n >= 3) log_greedy += std::log(eo), log_ahead += std::log(el);
    if (n == 1) EXPECT_LT(el, 1.1 * eo) << "look-ahead gives up little on the first block";
  }
  EXPECT_LT(log_ahead, log_greedy) << "look-ahead lowers the error of the larger budgets";
}

// --depth: the first D blocks fitted together as one D-bit quantizer leave
// far less error after those D blocks than greedy blocks do, pay for it in
// their shorter prefixes, and are still a valid stack: every block lowers
// the error and the reported residuals are the dense blocks' output error.
TEST(BitStackDecompose, DesignedStageBeatsGreedyBlocksAtItsDepth) {
  const uint32_t rows = 40, cols = 48, iters = 6;
  const auto [w, H] = output_fit_problem(rows, cols, 41);
  BitStackHessian greedy;
  greedy.h = H.data();
  const auto by_block = bitstack_decompose(w.data(), rows, cols, iters, 1, nullptr, &greedy);
  for (uint32_t depth : {2u, 3u, 4u}) {
    BitStackHessian staged = greedy;
    staged.depth = depth;
    const auto designed = bitstack_decompose(w.data(), rows, cols, iters, 1, nullptr, &staged);
    ASSERT_EQ(designed.size(), iters);
    for (size_t n = 1; n <= iters; ++n) {
      EXPECT_LT(designed[n - 1].residual_after, designed[n - 1].residual_before) << "depth " << depth << " block " << n;
      EXPECT_NEAR(designed[n - 1].residual_after, output_error(w, designed, n, rows, cols, H),
                  1e-6 * designed[0].residual_before) << "depth " << depth << " block " << n;
    }
    // Same bytes: both stacks' first `depth` blocks are block 0 plus copies of its magnitude or fresh factors;
    // compare at the designed stack's bytes.
    const uint64_t bytes = prefix_bytes(designed, depth, rows, cols);
    EXPECT_LT(designed[depth - 1].residual_after, 0.85 * error_within(w, by_block, bytes, rows, cols, H))
        << "depth " << depth << ": after the stage";
    EXPECT_GT(designed[0].residual_after, by_block[0].residual_after) << "depth " << depth << ": block 0 alone";
  }
  BitStackHessian bad = greedy;
  bad.depth = kBitStackMaxDepth + 1;
  EXPECT_THROW(bitstack_decompose(w.data(), rows, cols, iters, 1, nullptr, &bad), std::invalid_argument);
}

// On a wide layer, deep blocks reuse block 0's magnitude (no factors of
// their own) where that removes more error per byte; each such block is the
// kind the reader accepts, and the dense sum of the blocks still equals
// what the reported residuals say.
TEST(BitStackDecompose, DeepBlocksOfWideLayersReuseBlockZerosMagnitude) {
  const uint32_t rows = 96, cols = 64, iters = 8;
  const auto [w, H] = output_fit_problem(rows, cols, 31);
  BitStackHessian fit;
  fit.h = H.data();
  const auto blocks = bitstack_decompose(w.data(), rows, cols, iters, 1, nullptr, &fit);
  uint32_t reused = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (blocks[b].kind != kBitStackKindScaledFirst) continue;
    ++reused;
    EXPECT_GT(b, 0u);
    EXPECT_TRUE(std::isfinite(blocks[b].scale) && blocks[b].scale != 0.0f);
    EXPECT_EQ(blocks[b].u, blocks[0].u);
    EXPECT_EQ(blocks[b].v, blocks[0].v);
    EXPECT_LT(bitstack_block_bytes(blocks[b], rows, cols), bitstack_block_bytes(blocks[0], rows, cols));
    EXPECT_LT(blocks[b].residual_after, blocks[b].residual_before);
  }
  EXPECT_GT(reused, 0u);
  EXPECT_NEAR(blocks.back().residual_after, output_error(w, blocks, blocks.size(), rows, cols, H),
              1e-6 * blocks[0].residual_before);
}

TEST(BitStackDecompose, DefaultRankRule) {
  EXPECT_EQ(bitstack_default_rank(64, 64), 1u);
  EXPECT_EQ(bitstack_default_rank(768, 768), 3u);
  EXPECT_EQ(bitstack_default_rank(4096, 4096), 16u);
  EXPECT_EQ(bitstack_default_rank(4096, 11008), 16u);
}

// A tensor of encoded blocks in 64-byte aligned memory (mem: each whole
// block as the file holds it), read as a session does: ptrs point past each
// header, meta holds what the headers say.
struct TestTensor {
  uint32_t rows, cols;
  std::vector<float> scale;
  std::vector<std::vector<uint8_t>> encoded;
  std::vector<uint8_t*> mem;
  std::vector<const uint8_t*> ptrs;
  std::vector<BitStackBlockMeta> meta;
  BitStackTensor t{};
  WeightView view{};
  std::vector<float> dense;  // sum of the blocks' weights
  ~TestTensor() {
    for (uint8_t* p : mem) std::free(p);
  }
};

// Blocks of ranks rank_base + b % rank_cycle (at most min(rows, cols)), fitted
// to a random matrix one after another; odd seeds get an input scale.
void build(TestTensor* tt, uint32_t rows, uint32_t cols, uint32_t n_blocks, uint32_t seed, uint32_t rank_base = 1,
           uint32_t rank_cycle = 3) {
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
    const uint32_t rank = std::min({rank_base + b % rank_cycle, rows, cols});
    auto bl = bitstack_decompose(w.data(), rows, cols, 1, rank);
    bitstack_block_accumulate(bl[0], rows, cols, tt->dense.data());
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(a[i]) - tt->dense[i];
    std::vector<uint8_t> e = bitstack_encode_block(bl[0], 0, TensorRole::Wq, b, rows, cols);
    uint8_t* p = static_cast<uint8_t*>(std::aligned_alloc(64, e.size()));
    std::memcpy(p, e.data(), e.size());
    tt->mem.push_back(p);
    tt->ptrs.push_back(p + kBitStackHeaderBytes);
    BitStackBlockHeader h;
    std::memcpy(&h, p, sizeof h);
    tt->meta.push_back(bitstack_block_meta(h));
  }
  tt->t = BitStackTensor{with_scale ? tt->scale.data() : nullptr, tt->ptrs.data(), tt->meta.data(), n_blocks,
                         rows, cols, false};
  tt->view = WeightView{WeightFormat::BitStack, rows, cols, reinterpret_cast<const uint8_t*>(&tt->t), 0, {n_blocks, 0, 0, 0}};
}

// The BitStack kernels under test: (name, kernel, tolerance relative to the
// largest sum_c |W x| of a row). The f32 kernels are exact up to rounding;
// the VNNI and AVX2 kernels quantize z to int8.
struct KernelUnderTest {
  const char* name;
  MatmulFn fn;
  double tol;
};

std::vector<KernelUnderTest> bitstack_kernels_under_test() {
  std::vector<KernelUnderTest> sets = {{"scalar", matmul_bitstack_scalar, 1e-5}};
#if defined(__x86_64__)
  if (kernels_for(Isa::Avx2) != nullptr) sets.push_back({"avx2-int8", matmul_bitstack_avx2, 2e-2});
  if (kernels_for(Isa::Avx512) != nullptr) {
    sets.push_back({"avx512", matmul_bitstack_avx512, 1e-5});
    if (__builtin_cpu_supports("avx512vnni")) sets.push_back({"vnni", matmul_bitstack_vnni, 2e-2});
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi")) {
      sets.push_back({"vbmi", matmul_bitstack_vbmi, 2e-2});
    }
  }
#endif
#if defined(__ARM_NEON)
  sets.push_back({"neon-f32", matmul_bitstack_neon, 1e-5});  // also filed as the neon table's entry below
#endif
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Neon}) {  // whatever each table files for BitStack
    if (const KernelSet* k = kernels_for(isa)) sets.push_back({k->name, k->get(WeightFormat::BitStack), 2e-2});
  }
  return sets;
}

// y = (dense W) (s ⊙ x) in double for n tokens; *scale = the largest sum_c |W x| of a row.
std::vector<double> dense_reference(const TestTensor& tt, const std::vector<float>& x, uint32_t n, uint32_t ldx,
                                    uint32_t ldy, double* scale) {
  std::vector<double> ref(size_t(n) * ldy, 0.0);
  *scale = 0;
  for (uint32_t t = 0; t < n; ++t) {
    for (uint32_t r = 0; r < tt.rows; ++r) {
      double acc = 0, mag = 0;
      for (uint32_t c = 0; c < tt.cols; ++c) {
        const double p = double(tt.dense[size_t(r) * tt.cols + c]) * tt.scale[c] * x[t * ldx + c];
        acc += p;
        mag += std::fabs(p);
      }
      ref[t * ldy + r] = acc;
      *scale = std::max(*scale, mag);
    }
  }
  return ref;
}

// Every kernel against the dense reconstruction, and no writes outside its
// rows. `loose` multiplies the tolerance of the int8 kernels (tol > 1e-5).
void expect_kernels_match_dense(const TestTensor& tt, const std::vector<float>& x, uint32_t n, uint32_t ldx,
                                uint32_t ldy, const char* what, double loose = 1.0) {
  double scale = 0;
  const std::vector<double> ref = dense_reference(tt, x, n, ldx, ldy, &scale);
  Activations act{x.data(), ldx, n, nullptr, nullptr, 0};
  for (const KernelUnderTest& ks : bitstack_kernels_under_test()) {
    ASSERT_NE(ks.fn, nullptr) << ks.name;
    std::vector<float> y(size_t(n) * ldy, -7.0f);
    ks.fn(tt.view, act, y.data(), ldy, 0, tt.rows);
    const double tol = ks.tol > 1e-5 ? ks.tol * loose : ks.tol;
    for (uint32_t t = 0; t < n; ++t) {
      for (uint32_t r = 0; r < tt.rows; ++r) {
        EXPECT_NEAR(y[t * ldy + r], ref[t * ldy + r], tol * scale + 1e-6)
            << ks.name << " " << what << " " << tt.rows << "x" << tt.cols << " token " << t << " row " << r;
      }
      for (uint32_t r = tt.rows; r < ldy; ++r) EXPECT_EQ(y[t * ldy + r], -7.0f) << ks.name << " wrote outside its rows";
    }
  }
}

std::vector<float> random_input(uint32_t n, uint32_t ldx, uint32_t seed) {
  std::vector<float> x(size_t(n) * ldx);
  std::mt19937 g(seed);
  std::normal_distribution<float> nd;
  for (float& v : x) v = nd(g);
  return x;
}

TEST(BitStackKernel, MatchesDenseReconstructionOnRaggedShapes) {
  const uint32_t shapes[][2] = {{1, 1}, {5, 13}, {3, 16}, {37, 300}, {64, 172}, {172, 64}, {9, 513}, {33, 257}};
  uint32_t seed = 1;
  for (auto& sh : shapes) {
    TestTensor tt;
    build(&tt, sh[0], sh[1], 4, seed++);
    const uint32_t n = 3, ldx = sh[1] + 5, ldy = sh[0] + 2;
    const std::vector<float> x = random_input(n, ldx, seed);
    expect_kernels_match_dense(tt, x, n, ldx, ldy, "ragged");
    Activations act{x.data(), ldx, n, nullptr, nullptr, 0};
    for (const KernelUnderTest& ks : bitstack_kernels_under_test()) {
      std::vector<float> y(size_t(n) * ldy, -7.0f), y2(size_t(n) * ldy, -7.0f);
      ks.fn(tt.view, act, y.data(), ldy, 0, sh[0]);
      // Split rows like the thread pool does: results must be bit-identical.
      const uint32_t mid = sh[0] / 2;
      ks.fn(tt.view, act, y2.data(), ldy, 0, mid);
      ks.fn(tt.view, act, y2.data(), ldy, mid, sh[0]);
      for (uint32_t t = 0; t < n; ++t)
        for (uint32_t r = 0; r < sh[0]; ++r) EXPECT_EQ(y[t * ldy + r], y2[t * ldy + r]) << ks.name;
    }
  }
}

// Ranks 4..9 (a kernel that takes ranks four at a time needs two passes from
// rank 5), rows wider than 1024 columns with ragged ends, few rows and many,
// and inputs with outlier channels and an all-zero stretch (the AVX2 kernel
// chooses its quantization tiles from the input). An outlier channel
// coarsens the int8 step of its whole tile (256 columns in the VNNI kernel
// and at least that in the AVX2 one), hence the looser bound there.
TEST(BitStackKernel, MatchesDenseAtHighRanksWideRowsAndOutlierInputs) {
  const uint32_t shapes[][2] = {{70, 1030}, {13, 2100}, {6, 4133}, {21, 772}};
  uint32_t seed = 40;
  for (auto& sh : shapes) {
    TestTensor tt;
    build(&tt, sh[0], sh[1], 6, seed++, /*rank_base=*/4, /*rank_cycle=*/6);
    const uint32_t n = 2, ldx = sh[1] + 3, ldy = sh[0] + 1;
    std::vector<float> x = random_input(n, ldx, seed);
    expect_kernels_match_dense(tt, x, n, ldx, ldy, "gaussian input");
    std::mt19937 g(seed);
    for (uint32_t t = 0; t < n; ++t) {
      for (int i = 0; i < 5; ++i) x[t * ldx + g() % sh[1]] *= 40.0f;                  // outlier channels
      for (uint32_t c = 256; c < std::min(sh[1], 600u); ++c) x[t * ldx + c] = 0.0f;  // a silent stretch
    }
    expect_kernels_match_dense(tt, x, n, ldx, ldy, "outlier input", /*loose=*/2.5);
  }
}

// The thread pool may cut rows anywhere, and a token's result must not depend
// on the tokens batched with it: every split of the rows and every token on
// its own give the same bits as one call over everything.
TEST(BitStackKernel, RowSplitsAndLoneTokensGiveTheSameBits) {
  const uint32_t shapes[][2] = {{37, 300}, {64, 172}, {9, 513}, {70, 1030}, {50, 2100}};
  uint32_t seed = 60;
  for (auto& sh : shapes) {
    TestTensor tt;
    build(&tt, sh[0], sh[1], 5, seed++, /*rank_base=*/1 + seed % 4, /*rank_cycle=*/5);
    const uint32_t n = 4, ldx = sh[1] + 7, ldy = sh[0] + 3;
    const std::vector<float> x = random_input(n, ldx, seed);
    Activations act{x.data(), ldx, n, nullptr, nullptr, 0};
    for (const KernelUnderTest& ks : bitstack_kernels_under_test()) {
      std::vector<float> y(size_t(n) * ldy, -7.0f);
      ks.fn(tt.view, act, y.data(), ldy, 0, sh[0]);
      for (uint32_t step : {1u, 3u, 5u, 16u, 17u, 48u}) {
        std::vector<float> y2(size_t(n) * ldy, -7.0f);
        for (uint32_t r = 0; r < sh[0]; r += step) ks.fn(tt.view, act, y2.data(), ldy, r, std::min(sh[0], r + step));
        EXPECT_EQ(std::memcmp(y.data(), y2.data(), y.size() * sizeof(float)), 0)
            << ks.name << " " << sh[0] << "x" << sh[1] << ", rows in steps of " << step;
      }
      for (uint32_t t = 0; t < n; ++t) {
        Activations one{x.data() + size_t(t) * ldx, ldx, 1, nullptr, nullptr, 0};
        std::vector<float> y1(ldy, -7.0f);
        ks.fn(tt.view, one, y1.data(), ldy, 0, sh[0]);
        EXPECT_EQ(std::memcmp(y1.data(), y.data() + size_t(t) * ldy, ldy * sizeof(float)), 0)
            << ks.name << " " << sh[0] << "x" << sh[1] << ", token " << t << " alone";
      }
    }
  }
}

// The 16-row sign layout (runtime/bitstack_signs16.h) keeps every sign byte
// where signs16_byte says, and re-laying back restores the plane.
TEST(BitStackSigns16, RelayoutPutsEveryByteWhereItsAddressSaysAndBack) {
  const uint32_t shapes[][2] = {{16, 64}, {37, 96}, {64, 64}, {50, 1056}, {33, 128}};
  std::mt19937 g(5);
  for (auto& sh : shapes) {
    const uint32_t rows = sh[0], stride = (sh[1] + 7) / 8;
    ASSERT_TRUE(signs16_applies(rows, sh[1]));
    std::vector<uint8_t> plane(size_t(rows) * stride), scratch(signs16_scratch_bytes(stride));
    for (uint8_t& b : plane) b = uint8_t(g());
    std::vector<uint8_t> grouped = plane;
    signs16_relayout(grouped.data(), rows, stride, true, scratch.data());
    EXPECT_NE(grouped, plane) << rows << "x" << sh[1];
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t j = 0; j < stride; ++j)
        ASSERT_EQ(grouped[signs16_byte(r, j, rows, stride)], plane[size_t(r) * stride + j])
            << rows << "x" << sh[1] << " row " << r << " byte " << j;
    signs16_relayout(grouped.data(), rows, stride, false, scratch.data());
    EXPECT_EQ(grouped, plane) << rows << "x" << sh[1];
  }
  EXPECT_FALSE(signs16_applies(64, 172));  // 22-byte rows: not whole dwords
  EXPECT_FALSE(signs16_applies(15, 64));   // no full group
}

// The kernels that read the 16-row layout give the same bits from it as from
// row-major planes, for any row split: groups cut by the split, rows after
// the last full group, spans wider than 1024 columns.
TEST(BitStackKernel, SignPlanesIn16RowGroupsGiveTheSameBits) {
  std::vector<KernelUnderTest> readers = {{"scalar", matmul_bitstack_scalar, 0}};
#if defined(__x86_64__)
  if (kernels_for(Isa::Avx512) != nullptr && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512vbmi")) {
    readers.push_back({"vbmi", matmul_bitstack_vbmi, 0});
  }
#endif
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {  // what each table says it reads
    const KernelSet* k = kernels_for(isa);
    if (k != nullptr && k->bitstack_signs16) readers.push_back({k->name, k->get(WeightFormat::BitStack), 0});
  }
  const uint32_t shapes[][2] = {{16, 32}, {37, 96}, {64, 64}, {50, 1056}, {96, 768}};
  uint32_t seed = 90;
  for (auto& sh : shapes) {
    TestTensor tt;
    build(&tt, sh[0], sh[1], 4, seed++, /*rank_base=*/1, /*rank_cycle=*/5);
    const uint32_t rows = sh[0], n = 2, ldx = sh[1] + 3, ldy = rows + 1, stride = (sh[1] + 7) / 8;
    const std::vector<float> x = random_input(n, ldx, seed);
    Activations act{x.data(), ldx, n, nullptr, nullptr, 0};
    TestTensor grouped_tt;  // the same blocks, planes re-laid
    grouped_tt.rows = rows;
    grouped_tt.cols = sh[1];
    std::vector<uint8_t> scratch(signs16_scratch_bytes(stride));
    for (uint32_t b = 0; b < 4; ++b) {
      BitStackBlockHeader h;
      std::memcpy(&h, tt.mem[b], sizeof h);
      uint8_t* p = static_cast<uint8_t*>(std::aligned_alloc(64, h.bytes));
      std::memcpy(p, tt.mem[b], h.bytes);
      signs16_relayout(p + sizeof h, rows, stride, true, scratch.data());
      grouped_tt.mem.push_back(p);
      grouped_tt.ptrs.push_back(p + sizeof h);
    }
    grouped_tt.t = tt.t;
    grouped_tt.t.blocks = grouped_tt.ptrs.data();
    grouped_tt.t.signs16 = true;
    grouped_tt.view = tt.view;
    grouped_tt.view.data = reinterpret_cast<const uint8_t*>(&grouped_tt.t);
    for (const KernelUnderTest& ks : readers) {
      std::vector<float> y(size_t(n) * ldy, -7.0f);
      ks.fn(tt.view, act, y.data(), ldy, 0, rows);
      for (uint32_t step : {rows, 1u, 5u, 16u, 17u, 40u}) {
        std::vector<float> y2(size_t(n) * ldy, -7.0f);
        for (uint32_t r = 0; r < rows; r += step) ks.fn(grouped_tt.view, act, y2.data(), ldy, r, std::min(rows, r + step));
        EXPECT_EQ(std::memcmp(y.data(), y2.data(), y.size() * sizeof(float)), 0)
            << ks.name << " " << rows << "x" << sh[1] << ", rows in steps of " << step;
      }
    }
  }
}

// A kBitStackKindScaledFirst block (signs of its own, block 0's factors times
// a scalar) against the dense S ⊙ (a U0^T V0).
TEST(BitStackKernel, ScaledFirstBlockUsesBlockZerosFactors) {
  const uint32_t shapes[][2] = {{37, 300}, {20, 1100}, {5, 13}};
  uint32_t seed = 80;
  for (auto& sh : shapes) {
    const uint32_t rows = sh[0], cols = sh[1];
    TestTensor tt;
    build(&tt, rows, cols, 1, seed++, /*rank_base=*/3, /*rank_cycle=*/1);
    BitStackBlockHeader h0;
    std::memcpy(&h0, tt.mem[0], sizeof h0);
    BitStackLayout L;
    ASSERT_TRUE(bitstack_layout_kind(rows, cols, h0.rank, kBitStackKindScaledFirst, &L));
    BitStackBlockHeader h = h0;
    h.index = 1;
    h.kind = kBitStackKindScaledFirst;
    h.u_offset = h.v_offset = 0;
    h.bytes = L.bytes;
    const float a = -0.37f;
    std::memset(h.reserved, 0, sizeof h.reserved);
    std::memcpy(&h.reserved[0], &a, 4);
    uint8_t* p = static_cast<uint8_t*>(std::aligned_alloc(64, L.bytes));
    std::memset(p, 0, L.bytes);
    std::memcpy(p, &h, sizeof h);
    std::mt19937 g(seed);
    for (uint64_t i = 0; i < uint64_t(rows) * L.sign_row_bytes; ++i) p[sizeof h + i] = uint8_t(g());
    tt.mem.push_back(p);
    tt.ptrs.push_back(p + sizeof h);
    tt.meta.push_back(bitstack_block_meta(h));
    const uint8_t* b0 = tt.mem[0];
    for (uint32_t r = 0; r < rows; ++r) {
      for (uint32_t c = 0; c < cols; ++c) {
        float m = 0.0f;
        for (uint32_t k = 0; k < h0.rank; ++k) {
          uint16_t u, v;
          std::memcpy(&u, b0 + h0.u_offset + (size_t(k) * rows + r) * 2, 2);
          std::memcpy(&v, b0 + h0.v_offset + (size_t(k) * cols + c) * 2, 2);
          m += half_to_float(u) * half_to_float(v);
        }
        const bool plus = (p[sizeof h + size_t(r) * L.sign_row_bytes + c / 8] >> (c % 8)) & 1;
        tt.dense[size_t(r) * cols + c] += (plus ? a : -a) * m;
      }
    }
    tt.t.blocks = tt.ptrs.data();
    tt.t.meta = tt.meta.data();
    tt.t.n_loaded = 2;
    const uint32_t n = 2, ldx = cols, ldy = rows;
    expect_kernels_match_dense(tt, random_input(n, ldx, seed), n, ldx, ldy, "scaled-first block");
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

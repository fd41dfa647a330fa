// Kernel tests: every SIMD kernel set against the portable scalar reference,
// the scalar reference against a double-precision dot product of the
// dequantized weights, the Q8 encoder's error bound, and fp16 conversions.
//
// Formats are discovered, not listed: every code in [0, kFormatSlots) with a
// kernel in the scalar table is tested if the host encoder can produce it, so
// a new format is covered as soon as it has a scalar kernel and an encoder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/half.h"
#include "runtime/kernels/kernels.h"
#include "runtime/kernels/matmul.h"
#include "runtime/weights.h"
#include "tools/quantize.h"

namespace {

using stk::Activations;
using stk::Isa;
using stk::KernelSet;
using stk::WeightFormat;
using stk::WeightView;

// Exactly `n` bytes (so ASan sees over-reads) at a 64-byte aligned address,
// as tensors are inside a mapped model.
template <typename T>
class Buffer {
 public:
  explicit Buffer(size_t count) : count_(count) {
    if (posix_memalign(&p_, 64, count == 0 ? 1 : count * sizeof(T)) != 0) std::abort();
  }
  ~Buffer() { std::free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* data() const { return static_cast<T*>(p_); }
  T& operator[](size_t i) const { return data()[i]; }
  size_t size() const { return count_; }

 private:
  void* p_ = nullptr;
  size_t count_;
};

struct Shape {
  uint32_t rows, cols;
};
// Ragged on purpose: 1-wide, tails that are not a multiple of any vector
// width or group (172 = 5*32 + 12), 1000 = 31*32 + 8, 257 rows, and rows
// wider than the 8192-column stripes of the AVX-512 VNNI Q8 kernel
// (16500 = 2*8192 + 116).
const Shape kShapes[] = {{1, 1},   {1, 200},  {200, 1}, {7, 172}, {172, 64},
                         {64, 172}, {33, 95}, {257, 31}, {5, 1000}, {3, 16500}};
const uint32_t kBatches[] = {1, 3, 17};

// An encoded random tensor and its float decoding (what the kernels should
// multiply by).
struct Tensor {
  WeightFormat format;
  uint32_t rows, cols;
  uint32_t params[4];
  Buffer<uint8_t>* bytes = nullptr;
  std::vector<float> dequant;  // rows x cols via weight_dequantize_row
  WeightView view() const {
    return WeightView{format, rows, cols, bytes->data(), bytes->size(), {params[0], params[1], params[2], params[3]}};
  }
  ~Tensor() { delete bytes; }
};

// False when the host encoder cannot produce `format`.
bool encode(WeightFormat format, uint32_t rows, uint32_t cols, std::mt19937& rng, Tensor* t) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(size_t(rows) * cols);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = nd(rng);
    if (i % 97 == 5) w[i] *= 8.0f;  // outliers, so group scales differ
  }
  std::vector<uint8_t> enc;
  try {
    enc = stk::host::encode_weights(w.data(), rows, cols, format, t->params);
  } catch (const std::invalid_argument&) {
    return false;
  }
  t->format = format;
  t->rows = rows;
  t->cols = cols;
  t->bytes = new Buffer<uint8_t>(enc.size());
  std::memcpy(t->bytes->data(), enc.data(), enc.size());
  uint64_t need = 0;
  EXPECT_TRUE(stk::weight_format_bytes(format, rows, cols, t->params, &need));
  EXPECT_EQ(need, enc.size()) << "encoder and weight_format_bytes disagree";
  t->dequant.resize(w.size());
  for (uint32_t r = 0; r < rows; ++r) stk::weight_dequantize_row(t->view(), r, t->dequant.data() + size_t(r) * cols);
  return true;
}

// n input rows of `cols` floats at stride ldx, plus the int8 copy that
// kernels asking for wants_q8_activations read, made as the forward pass makes
// it (runtime/forward.cpp): groups of 32, scale = max|x| / 127, round to
// nearest, padding of a short group zeroed.
struct Input {
  uint32_t n, cols;
  size_t ldx, ldq;
  Buffer<float> x;
  Buffer<int8_t> q8;
  Buffer<float> q8_scales;
  Input(uint32_t n_, uint32_t cols_, std::mt19937& rng)
      : n(n_),
        cols(cols_),
        ldx(cols_ + 7),
        ldq((cols_ + 63) / 64 * 64),
        x((n_ - 1) * (cols_ + 7) + cols_),
        q8(n_ * ((cols_ + 63) / 64 * 64)),
        q8_scales(n_ * ((cols_ + 31) / 32)) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = nd(rng);
    const uint32_t groups = (cols + 31) / 32;
    for (uint32_t t = 0; t < n; ++t) {
      const float* xt = x.data() + t * ldx;
      int8_t* q = q8.data() + t * ldq;
      for (uint32_t g = 0; g < groups; ++g) {
        const uint32_t c0 = g * 32, c1 = std::min(cols, c0 + 32);
        float amax = 0.0f;
        for (uint32_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(xt[c]));
        const float scale = amax / 127.0f;
        const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        for (uint32_t c = c0; c < c1; ++c) q[c] = int8_t(std::nearbyint(xt[c] * inv));
        for (uint32_t c = c1; c < c0 + 32 && c < ldq; ++c) q[c] = 0;
        q8_scales[size_t(t) * groups + g] = scale;
      }
    }
  }
  Activations act() const { return Activations{x.data(), ldx, n, q8.data(), q8_scales.data(), ldq}; }
  float xv(uint32_t t, uint32_t c) const { return x[size_t(t) * ldx + c]; }
  // The int8 copy's error bound for element c of row t: half a step.
  float q8_err(uint32_t t, uint32_t c) const { return 0.5f * q8_scales[size_t(t) * ((cols + 31) / 32) + c / 32]; }
};

constexpr float kSentinel = -12345.0f;
constexpr double kU = 1.0 / (1 << 24);  // unit roundoff of float

// Worst-case float error scale of one output: a sum of `cols` products in
// any order (and any grouping, e.g. per-group partial sums times a group
// scale, or d*sum(code*x) + m*sum(x) for offset formats) is within
// (cols + 4) * u of the exact value times the sum of the magnitudes of the
// terms involved. The terms are bounded by |w| x |x| plus, for offset
// formats, the group offset |m| <= 2 max|w| times |x|, so we use
// sum|w x| + 2 max|w| sum|x|. An indexing or tail bug produces errors of the
// order of sum|w x| itself, far above this.
double float_error_scale(const Tensor& w, const Input& in, uint32_t t, uint32_t r) {
  double s = 0.0, sx = 0.0, wmax = 0.0;
  for (uint32_t c = 0; c < w.cols; ++c) {
    const double wc = w.dequant[size_t(r) * w.cols + c], xc = in.xv(t, c);
    s += std::fabs(wc * xc);
    sx += std::fabs(xc);
    wmax = std::max(wmax, std::fabs(wc));
  }
  return (w.cols + 4) * kU * (s + 2 * wmax * sx);
}

// The extra difference when one side multiplies int8 activations and the
// other floats: sum |w_c| * (half a quantization step of x_c).
double q8_activation_error(const Tensor& w, const Input& in, uint32_t t, uint32_t r) {
  double e = 0.0;
  for (uint32_t c = 0; c < w.cols; ++c) e += std::fabs(w.dequant[size_t(r) * w.cols + c]) * in.q8_err(t, c);
  return e * (1 + 1e-5);
}

// Calls `fn` for rows [r0, r1) into a fresh y of n x ldy floats filled with
// the sentinel.
Buffer<float>* run(stk::MatmulFn fn, const Tensor& w, const Input& in, size_t ldy, uint32_t r0, uint32_t r1) {
  auto* y = new Buffer<float>((in.n - 1) * ldy + w.rows);
  for (size_t i = 0; i < y->size(); ++i) (*y)[i] = kSentinel;
  fn(w.view(), in.act(), y->data(), ldy, r0, r1);
  return y;
}

std::vector<std::pair<uint32_t, uint32_t>> row_ranges(uint32_t rows) {
  std::vector<std::pair<uint32_t, uint32_t>> out = {{0, rows}};
  if (rows >= 3) {
    const uint32_t r0 = rows / 3, r1 = std::max(r0 + 1, rows - rows / 4);
    out.push_back({r0, r1});           // a chunk that does not start at 0
    out.push_back({rows - 1, rows});   // the last row alone
  }
  return out;
}

// Formats with a scalar kernel that the host encoder can produce.
std::vector<WeightFormat> testable_formats() {
  const KernelSet& ref = stk::kernel_table_scalar();
  std::vector<WeightFormat> out;
  std::mt19937 rng(1);
  for (uint32_t code = 0; code < stk::kFormatSlots; ++code) {
    if (ref.fn[code] == nullptr) continue;
    Tensor probe;
    if (encode(WeightFormat(code), 2, 40, rng, &probe)) {
      out.push_back(WeightFormat(code));
    } else {
      std::printf("[ SKIPPED  ] format %u (%s): the host encoder cannot produce it\n", code,
                  stk::weight_format_name(WeightFormat(code)));
    }
  }
  return out;
}

TEST(Kernels, ScalarTableCoversF32AndQ8) {
  std::vector<WeightFormat> f = testable_formats();
  std::string names;
  for (WeightFormat x : f) names += std::string(" ") + stk::weight_format_name(x);
  std::printf("formats under test:%s\n", names.c_str());
  EXPECT_NE(std::find(f.begin(), f.end(), WeightFormat::F32), f.end());
  EXPECT_NE(std::find(f.begin(), f.end(), WeightFormat::Q8), f.end());
}

// The scalar reference against a double-precision dot product of the
// dequantized weights with the inputs (plus the int8-activation error when
// the scalar kernel multiplies int8 activations).
TEST(Kernels, ScalarMatchesDoubleReference) {
  const KernelSet& ref = stk::kernel_table_scalar();
  std::mt19937 rng(11);
  for (WeightFormat f : testable_formats()) {
    const bool q8act = ref.wants_q8_activations[uint32_t(f)];
    for (const Shape& s : kShapes) {
      Tensor w;
      ASSERT_TRUE(encode(f, s.rows, s.cols, rng, &w));
      for (uint32_t n : kBatches) {
        SCOPED_TRACE(std::string(stk::weight_format_name(f)) + " " + std::to_string(s.rows) + "x" +
                     std::to_string(s.cols) + " n=" + std::to_string(n));
        Input in(n, s.cols, rng);
        const size_t ldy = s.rows + 5;
        std::unique_ptr<Buffer<float>> y(run(ref.fn[uint32_t(f)], w, in, ldy, 0, s.rows));
        for (uint32_t t = 0; t < n; ++t) {
          for (uint32_t r = 0; r < s.rows; ++r) {
            double exact = 0.0;
            for (uint32_t c = 0; c < s.cols; ++c) exact += double(w.dequant[size_t(r) * s.cols + c]) * in.xv(t, c);
            const double tol = float_error_scale(w, in, t, r) + (q8act ? q8_activation_error(w, in, t, r) : 0.0);
            ASSERT_NEAR((*y)[t * ldy + r], exact, tol) << "t " << t << " r " << r;
          }
          for (uint32_t r = s.rows; r < ldy && t + 1 < n; ++r) ASSERT_EQ((*y)[t * ldy + r], kSentinel);
        }
      }
    }
  }
}

void compare_with_scalar(Isa isa, const char* name) {
  const KernelSet* k = stk::kernels_for(isa);
  if (k == nullptr) GTEST_SKIP() << name << " kernels are not available in this build or on this CPU";
  const KernelSet& ref = stk::kernel_table_scalar();
  std::mt19937 rng(uint32_t(isa) * 1000 + 3);
  int compared = 0;
  for (WeightFormat f : testable_formats()) {
    const uint32_t code = uint32_t(f);
    ASSERT_NE(k->fn[code], nullptr) << name << " lacks a kernel for " << stk::weight_format_name(f)
                                    << " (SIMD tables start from the scalar one)";
    const bool q8_differs = k->wants_q8_activations[code] != ref.wants_q8_activations[code];
    for (const Shape& s : kShapes) {
      Tensor w;
      ASSERT_TRUE(encode(f, s.rows, s.cols, rng, &w));
      for (uint32_t n : kBatches) {
        Input in(n, s.cols, rng);
        const size_t ldy = s.rows + 3;
        std::unique_ptr<Buffer<float>> expect(run(ref.fn[code], w, in, ldy, 0, s.rows));
        std::unique_ptr<Buffer<float>> full(run(k->fn[code], w, in, ldy, 0, s.rows));
        for (auto [r0, r1] : row_ranges(s.rows)) {
          SCOPED_TRACE(std::string(name) + " " + stk::weight_format_name(f) + " " + std::to_string(s.rows) + "x" +
                       std::to_string(s.cols) + " n=" + std::to_string(n) + " rows [" + std::to_string(r0) + "," +
                       std::to_string(r1) + ")");
          std::unique_ptr<Buffer<float>> y(run(k->fn[code], w, in, ldy, r0, r1));
          for (uint32_t t = 0; t < n; ++t) {
            for (uint32_t r = 0; r < ldy && size_t(t) * ldy + r < y->size(); ++r) {
              const float got = (*y)[t * ldy + r];
              if (r < r0 || r >= r1) {
                ASSERT_EQ(got, kSentinel) << "wrote outside its rows: t " << t << " r " << r;
                continue;
              }
              // The same row is computed the same way whatever range it is
              // called with (matmul.h), which keeps results independent of
              // the thread count: bitwise equal to the full-range call.
              const float whole = (*full)[t * ldy + r];
              ASSERT_EQ(std::memcmp(&got, &whole, sizeof got), 0) << "t " << t << " r " << r;
              double tol = 2 * float_error_scale(w, in, t, r);  // each side within one bound of exact
              if (q8_differs) tol += q8_activation_error(w, in, t, r);
              ASSERT_NEAR(got, (*expect)[t * ldy + r], tol) << "t " << t << " r " << r;
              ++compared;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 0);
}

TEST(Kernels, Avx2MatchesScalar) { compare_with_scalar(Isa::Avx2, "avx2"); }
TEST(Kernels, Avx512MatchesScalar) { compare_with_scalar(Isa::Avx512, "avx512"); }
TEST(Kernels, NeonMatchesScalar) { compare_with_scalar(Isa::Neon, "neon"); }

TEST(Kernels, BestSetIsOneOfTheAvailableSets) {
  const KernelSet& best = stk::kernels_best();
  const KernelSet* same = stk::kernels_for(best.isa);
  ASSERT_NE(same, nullptr);
  EXPECT_EQ(same, &best);
  EXPECT_EQ(stk::kernels_for(Isa::Scalar), &stk::kernel_table_scalar());
}

TEST(Kernels, UnknownFormatCodesHaveNoKernel) {
  const KernelSet& ref = stk::kernel_table_scalar();
  EXPECT_EQ(ref.fn[uint32_t(WeightFormat::Invalid)], nullptr);
  EXPECT_EQ(ref.get(WeightFormat(stk::kFormatSlots)), nullptr);
  EXPECT_EQ(ref.get(WeightFormat(0xFFFF)), nullptr);
}

// Q8 multiplies the int8 activations in every kernel set, so the SIMD
// kernels compute the scalar kernel's integer sums and differ only in float
// rounding: a tolerance relative to sum |w * xq| (far tighter than the
// generic bound above, which cannot see a lost stripe of a wide row). Rows
// wider than the 8192-column stripes of the VNNI kernel, a short last group,
// every row split and each token alone give the same bits.
TEST(Kernels, Q8SimdMatchesScalarTightlyOnWideRows) {
  const KernelSet& ref = stk::kernel_table_scalar();
  ASSERT_TRUE(ref.wants_q8_activations[uint32_t(WeightFormat::Q8)]);
  std::mt19937 rng(77);
  const Shape shapes[] = {{3, 16500}, {2, 8200}, {5, 300}, {4, 8192}};
  int sets = 0;
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    const KernelSet* k = stk::kernels_for(isa);
    if (k == nullptr || !k->wants_q8_activations[uint32_t(WeightFormat::Q8)]) continue;
    ++sets;
    const stk::MatmulFn fn = k->get(WeightFormat::Q8);
    for (const Shape& s : shapes) {
      Tensor w;
      ASSERT_TRUE(encode(WeightFormat::Q8, s.rows, s.cols, rng, &w));
      for (uint32_t n : {1u, 5u}) {
        SCOPED_TRACE(std::string(k->name) + " " + std::to_string(s.rows) + "x" + std::to_string(s.cols) + " n=" +
                     std::to_string(n));
        Input in(n, s.cols, rng);
        const size_t ldy = s.rows + 1;
        std::unique_ptr<Buffer<float>> want(run(ref.get(WeightFormat::Q8), w, in, ldy, 0, s.rows));
        std::unique_ptr<Buffer<float>> got(run(fn, w, in, ldy, 0, s.rows));
        std::unique_ptr<Buffer<float>> split(run(fn, w, in, ldy, s.rows / 2, s.rows));
        fn(w.view(), in.act(), split->data(), ldy, 0, s.rows / 2);
        const uint32_t groups = (s.cols + 31) / 32;
        for (uint32_t t = 0; t < n; ++t) {
          const Activations one{in.x.data() + t * in.ldx, in.ldx, 1, in.q8.data() + t * in.ldq,
                                in.q8_scales.data() + size_t(t) * groups, in.ldq};
          std::vector<float> alone(ldy, kSentinel);
          fn(w.view(), one, alone.data(), ldy, 0, s.rows);
          for (uint32_t r = 0; r < s.rows; ++r) {
            double mag = 0.0;
            for (uint32_t c = 0; c < s.cols; ++c) {
              mag += std::fabs(double(w.dequant[size_t(r) * s.cols + c]) * in.q8[t * in.ldq + c] *
                               in.q8_scales[size_t(t) * groups + c / 32]);
            }
            const float g = (*got)[t * ldy + r];
            ASSERT_NEAR(g, (*want)[t * ldy + r], 1e-5 * mag + 1e-6) << "t " << t << " r " << r;
            ASSERT_EQ(std::memcmp(&g, &(*split)[t * ldy + r], sizeof g), 0) << "row split, t " << t << " r " << r;
            ASSERT_EQ(std::memcmp(&g, &alone[r], sizeof g), 0) << "token alone, t " << t << " r " << r;
          }
        }
      }
    }
  }
  if (sets == 0) GTEST_SKIP() << "no SIMD kernel set multiplies Q8 in int8 on this build or CPU";
}

// The float-activation Q8 product (kept to measure what the int8 activations
// cost) against the double reference, with no int8 slack.
TEST(Kernels, Q8FloatActivationReferenceIsExactUpToRounding) {
  std::mt19937 rng(78);
  for (const Shape& s : kShapes) {
    Tensor w;
    ASSERT_TRUE(encode(WeightFormat::Q8, s.rows, s.cols, rng, &w));
    Input in(3, s.cols, rng);
    const size_t ldy = s.rows;
    std::unique_ptr<Buffer<float>> y(run(stk::matmul_q8_f32act_scalar, w, in, ldy, 0, s.rows));
    for (uint32_t t = 0; t < in.n; ++t) {
      for (uint32_t r = 0; r < s.rows; ++r) {
        double exact = 0.0;
        for (uint32_t c = 0; c < s.cols; ++c) exact += double(w.dequant[size_t(r) * s.cols + c]) * in.xv(t, c);
        ASSERT_NEAR((*y)[t * ldy + r], exact, float_error_scale(w, in, t, r)) << s.rows << "x" << s.cols;
      }
    }
  }
}

// ---- Q8 encoding ------------------------------------------------------------------

// Q8 layout (format.h): int8 [rows*cols], then at the next 64-byte boundary
// fp16 scales [rows][ceil(cols/32)]. 3 x 172: 516 int8 -> scales at 576,
// 6 groups per row (5 of 32 and one of 12), 3*6*2 = 36 bytes: 612 in all.
TEST(Q8, LayoutOfARaggedTensor) {
  const uint32_t params[4] = {stk::kQ8Group, 0, 0, 0};
  uint64_t bytes = 0;
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q8, 3, 172, params, &bytes));
  EXPECT_EQ(bytes, 612u);
  EXPECT_EQ(stk::q8_scales_offset(3, 172), 576u);
  EXPECT_EQ(stk::q8_groups_per_row(172), 6u);
  EXPECT_EQ(stk::q8_groups_per_row(32), 1u);
  EXPECT_EQ(stk::q8_groups_per_row(33), 2u);
  // 64 x 64: 4096 int8 (already aligned) + 64*2*2 = 4352.
  ASSERT_TRUE(stk::weight_format_bytes(WeightFormat::Q8, 64, 64, params, &bytes));
  EXPECT_EQ(bytes, 4352u);
  const uint32_t bad[4] = {16, 0, 0, 0};
  EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::Q8, 3, 172, bad, &bytes));
  const uint32_t none[4] = {0, 0, 0, 0};
  EXPECT_FALSE(stk::weight_format_bytes(WeightFormat::F32, 0xFFFFFFFFu, 0xFFFFFFFFu, none, &bytes));
}

// Each weight is q * scale with |q| <= 127 and scale = max|w in group| / 127
// rounded to fp16, so |w - q*scale| <= scale / 2 (rounding to the nearest
// step). In fp16's normal range the rounding of the scale moves it by at most
// 2^-11 relative, so max|w|/scale <= 127 * (1 + 2^-11) < 127.5 and clamping
// adds no error; below it (max|w| < 127 * 2^-14) a scale rounded down may be
// bumped by one fp16 step (2^-24) so that max|w|/scale stays <= 127.5.
// Rows span magnitudes 2^-12 .. 2^12 to cover both ranges.
TEST(Q8, EncodeDequantizeErrorBound) {
  const uint32_t rows = 9, cols = 172;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(rows * cols);
  for (uint32_t r = 0; r < rows; ++r) {
    const float mag = std::ldexp(1.0f, int(r) * 3 - 12);  // 2^-12 .. 2^12
    for (uint32_t c = 0; c < cols; ++c) w[r * cols + c] = mag * nd(rng);
  }
  for (uint32_t c = 64; c < 96; ++c) w[2 * cols + c] = 0.0f;  // an all-zero group
  w[3 * cols + 170] = 1000.0f;                                 // an outlier in the short last group
  uint32_t params[4];
  std::vector<uint8_t> enc = stk::host::encode_weights(w.data(), rows, cols, WeightFormat::Q8, params);
  EXPECT_EQ(params[0], stk::kQ8Group);
  const WeightView v{WeightFormat::Q8, rows, cols, enc.data(), enc.size(), {params[0], 0, 0, 0}};
  const uint32_t groups = (cols + 31) / 32;
  std::vector<float> out(cols);
  for (uint32_t r = 0; r < rows; ++r) {
    stk::weight_dequantize_row(v, r, out.data());
    for (uint32_t g = 0; g < groups; ++g) {
      const uint32_t c0 = g * 32, c1 = std::min(cols, c0 + 32);
      float amax = 0.0f;
      for (uint32_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      uint16_t h;
      std::memcpy(&h, enc.data() + stk::q8_scales_offset(rows, cols) + (r * groups + g) * 2, 2);
      const float scale = stk::half_to_float(h);
      // fp16 keeps 11 significant bits (normal) or steps of 2^-24 (subnormal).
      const double ideal = double(amax) / 127.0;
      const double step = ideal >= std::ldexp(1.0, -14) ? ideal * std::ldexp(1.0, -11) : std::ldexp(1.0, -24);
      EXPECT_NEAR(scale, ideal, step) << "row " << r << " group " << g;
      EXPECT_GE(double(scale) * 127.5, double(amax)) << "row " << r << " group " << g;
      for (uint32_t c = c0; c < c1; ++c) {
        const int8_t q = int8_t(enc[r * cols + c]);
        EXPECT_GE(q, -127);
        EXPECT_EQ(out[c], float(q) * scale);
        EXPECT_LE(std::fabs(w[r * cols + c] - out[c]), scale / 2 * (1 + 1e-6f)) << "row " << r << " col " << c;
      }
      if (amax == 0.0f) {
        EXPECT_EQ(scale, 0.0f);
        for (uint32_t c = c0; c < c1; ++c) EXPECT_EQ(out[c], 0.0f);
      }
    }
  }
  // The outlier is represented exactly enough: it sets its group's scale.
  stk::weight_dequantize_row(v, 3, out.data());
  EXPECT_NEAR(out[170], 1000.0f, 1000.0f / 127 / 2);
}

// ---- fp16 conversion ----------------------------------------------------------------

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TEST(Half, ToFloatHandPickedValues) {
  EXPECT_EQ(bits_of(stk::half_to_float(0x0000)), 0x00000000u);  // +0
  EXPECT_EQ(bits_of(stk::half_to_float(0x8000)), 0x80000000u);  // -0
  EXPECT_EQ(stk::half_to_float(0x3C00), 1.0f);
  EXPECT_EQ(stk::half_to_float(0xC000), -2.0f);
  EXPECT_EQ(stk::half_to_float(0x3555), 0.333251953125f);  // 1365/4096
  EXPECT_EQ(stk::half_to_float(0x7BFF), 65504.0f);         // largest finite
  EXPECT_EQ(stk::half_to_float(0x0400), std::ldexp(1.0f, -14));          // smallest normal
  EXPECT_EQ(stk::half_to_float(0x0001), std::ldexp(1.0f, -24));          // smallest subnormal
  EXPECT_EQ(stk::half_to_float(0x03FF), 1023 * std::ldexp(1.0f, -24));   // largest subnormal
  EXPECT_EQ(stk::half_to_float(0x8200), -512 * std::ldexp(1.0f, -24));   // negative subnormal
  EXPECT_EQ(stk::half_to_float(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(stk::half_to_float(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(stk::half_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(stk::half_to_float(0x7C01)));  // signalling-NaN pattern stays NaN
  EXPECT_TRUE(std::isnan(stk::half_to_float(0xFFFF)));
}

TEST(Half, FromFloatHandPickedValues) {
  const float sub = std::ldexp(1.0f, -24);  // one subnormal step
  EXPECT_EQ(stk::float_to_half(0.0f), 0x0000);
  EXPECT_EQ(stk::float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(stk::float_to_half(1.0f), 0x3C00);
  EXPECT_EQ(stk::float_to_half(-2.0f), 0xC000);
  EXPECT_EQ(stk::float_to_half(65504.0f), 0x7BFF);
  EXPECT_EQ(stk::float_to_half(65519.0f), 0x7BFF);  // below the midpoint to 65536
  EXPECT_EQ(stk::float_to_half(65520.0f), 0x7C00);  // the midpoint rounds to even: infinity
  EXPECT_EQ(stk::float_to_half(1e6f), 0x7C00);
  EXPECT_EQ(stk::float_to_half(-1e6f), 0xFC00);
  EXPECT_EQ(stk::float_to_half(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(stk::float_to_half(-std::numeric_limits<float>::infinity()), 0xFC00);
  const uint16_t nan = stk::float_to_half(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  // Subnormals and ties.
  EXPECT_EQ(stk::float_to_half(sub), 0x0001);
  EXPECT_EQ(stk::float_to_half(0.5f * sub), 0x0000);   // tie between 0 and 1 step: even (0)
  EXPECT_EQ(stk::float_to_half(-0.5f * sub), 0x8000);
  EXPECT_EQ(stk::float_to_half(0.75f * sub), 0x0001);
  EXPECT_EQ(stk::float_to_half(0.25f * sub), 0x0000);
  EXPECT_EQ(stk::float_to_half(1.5f * sub), 0x0002);   // tie between 1 and 2: even (2)
  EXPECT_EQ(stk::float_to_half(2.5f * sub), 0x0002);   // tie between 2 and 3: even (2)
  EXPECT_EQ(stk::float_to_half(1e-10f), 0x0000);
  EXPECT_EQ(stk::float_to_half(1023 * sub), 0x03FF);
  EXPECT_EQ(stk::float_to_half(1023.5f * sub), 0x0400);  // tie: odd 0x03FF rounds up into the normals
  EXPECT_EQ(stk::float_to_half(std::ldexp(1.0f, -14)), 0x0400);
  // Normal ties (a half ulp of 1.0 is 2^-11).
  EXPECT_EQ(stk::float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie: even 0x3C00
  EXPECT_EQ(stk::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie: odd 0x3C01 -> 0x3C02
  EXPECT_EQ(stk::float_to_half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);  // above the tie
  EXPECT_EQ(stk::float_to_half(2047.0f / 1024.0f + std::ldexp(1.0f, -11)), 0x4000);  // 0x3FFF + tie -> carry to 2.0
  EXPECT_EQ(stk::float_to_half(0.1f), 0x2E66);
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = stk::half_to_float(uint16_t(h));
    const bool is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0;
    ASSERT_EQ(std::isnan(f), is_nan) << std::hex << h;
    if (is_nan) {
      const uint16_t back = stk::float_to_half(f);
      ASSERT_EQ(back & 0x7C00, 0x7C00) << std::hex << h;
      ASSERT_NE(back & 0x03FF, 0) << std::hex << h;
      ASSERT_EQ(back & 0x8000, h & 0x8000) << std::hex << h;
    } else {
      ASSERT_EQ(stk::float_to_half(f), h) << std::hex << h;
    }
  }
}

// Every float between two adjacent halves rounds to the nearer one (ties to
// even), checked against double arithmetic for random floats in range.
TEST(Half, RandomFloatsRoundToNearest) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    uint32_t b = any(rng);
    float f;
    std::memcpy(&f, &b, 4);
    if (!std::isfinite(f) || std::fabs(f) >= 65520.0f) continue;
    const uint16_t h = stk::float_to_half(f);
    const double got = stk::half_to_float(h);
    ASSERT_EQ(std::signbit(got), std::signbit(f));
    // The neighbours of h in the direction of f must not be closer.
    const uint16_t up = uint16_t(h + 1), down = uint16_t(h - 1);
    const double err = std::fabs(got - double(f));
    for (uint16_t nb : {up, down}) {
      if ((nb & 0x7FFF) >= 0x7C00 || ((nb ^ h) & 0x8000)) continue;  // past infinity or across zero
      const double e2 = std::fabs(double(stk::half_to_float(nb)) - double(f));
      ASSERT_TRUE(err < e2 || (err == e2 && (h & 1) == 0)) << std::hexfloat << f << " -> " << std::hex << h;
    }
  }
}

}  // namespace

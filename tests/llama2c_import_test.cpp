// Tests for tools/llama2c_import.* (host tool).
//
// Reference files: tests/data/stories260K.bin (always present; located via
// STK_TEST_DATA_DIR if defined, else next to this source file) and the shared
// model directory for the v1 / v2 exports (env STK_SHARED_MODELS, else the
// compile definition STK_SHARED_DIR, e.g. ${CMAKE_SOURCE_DIR}/../shared/models).
// Tests that need a missing file are skipped with a message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/llama2c_import.h"

namespace {

namespace fs = std::filesystem;
using stk::kNoLayer;
using stk::TensorRole;
using stk::host::HostModel;
using stk::host::HostTensor;
using stk::host::import_llama2c;
using stk::host::tensor_name;

constexpr uint64_t kLegacyBytes = 1056540;
constexpr uint64_t kV1Bytes = 1040384;
constexpr uint64_t kQ80Bytes = 392064;

std::string shared_models_dir() {
  if (const char* e = std::getenv("STK_SHARED_MODELS"); e && *e) return e;
#ifdef STK_SHARED_DIR
  return STK_SHARED_DIR;
#else
  return "";
#endif
}

std::string test_data_dir() {
#ifdef STK_TEST_DATA_DIR
  return STK_TEST_DATA_DIR;
#else
  return (fs::path(__FILE__).parent_path() / "data").string();
#endif
}

// Path of a file if present, else "".
std::string existing(const std::string& dir, const char* name) {
  if (dir.empty()) return "";
  fs::path p = fs::path(dir) / name;
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? p.string() : "";
}

std::string legacy_path() {
  std::string p = existing(test_data_dir(), "stories260K.bin");
  return p.empty() ? existing(shared_models_dir(), "stories260K.bin") : p;
}

#define REQUIRE_FILE(var, expr, what)                                                      \
  const std::string var = (expr);                                                          \
  if (var.empty()) GTEST_SKIP() << what << " not found (set STK_SHARED_MODELS to the "     \
                                << "directory holding the llama2.c reference models)";

std::vector<uint8_t> slurp(const std::string& path) { return stk::host::read_file(path); }

// A file in the temp directory, removed on destruction.
class TempFile {
 public:
  TempFile(const std::string& stem, const std::vector<uint8_t>& bytes) {
    static int counter = 0;
    path_ = (fs::temp_directory_path() /
             ("stk_llama2c_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + stem))
                .string();
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!f) throw std::runtime_error("cannot write temp file " + path_);
  }
  ~TempFile() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  std::string name() const { return fs::path(path_).filename().string(); }

 private:
  std::string path_;
};

// Imports `bytes` from a temp file and returns the error message ("" if none).
std::string import_error(const std::string& stem, const std::vector<uint8_t>& bytes, std::string* file_name) {
  TempFile f(stem, bytes);
  *file_name = f.name();
  try {
    import_llama2c(f.path());
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// Little-endian byte builder.
struct Bytes {
  std::vector<uint8_t> b;
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
  }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void f32(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u32(u);
  }
  void u8(uint8_t v) { b.push_back(v); }
  void pad_to(size_t n) { b.resize(n, 0); }
  void f32s(const std::vector<float>& v) {
    for (float x : v) f32(x);
  }
};

void put_i32(std::vector<uint8_t>& b, size_t off, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  for (size_t i = 0; i < 4; ++i) b.at(off + i) = uint8_t(u >> (8 * i));
}

bool bits_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// ---------------------------------------------------------------------------
// A tiny synthetic model with known values: dim 4, hidden 6, 2 layers,
// 2 heads (head size 2), 1 kv head (kv_dim 2), vocab 5, seq_len 3.

struct Tiny {
  static constexpr int32_t dim = 4, hidden = 6, layers = 2, heads = 2, kv_heads = 1, vocab = 5, seq = 3;
  static constexpr int32_t head_size = dim / heads, kv_dim = kv_heads * head_size;

  struct T {
    TensorRole role;
    uint32_t layer;
    uint32_t rows, cols;
    std::vector<float> data;
  };
  std::map<std::string, T> t;  // by tensor name
  bool shared;

  explicit Tiny(bool shared_classifier) : shared(shared_classifier) {
    int id = 0;
    auto add = [&](TensorRole role, uint32_t layer, uint32_t rows, uint32_t cols) {
      T x{role, layer, rows, cols, {}};
      ++id;
      for (uint32_t i = 0; i < rows * cols; ++i) x.data.push_back(float(id) * 100.f + float(i) * 0.25f - 1000.f);
      t[tensor_name(role, layer)] = x;
    };
    add(TensorRole::TokenEmbedding, kNoLayer, vocab, dim);
    for (uint32_t l = 0; l < uint32_t(layers); ++l) {
      add(TensorRole::AttnNorm, l, 1, dim);
      add(TensorRole::Wq, l, dim, dim);
      add(TensorRole::Wk, l, kv_dim, dim);
      add(TensorRole::Wv, l, kv_dim, dim);
      add(TensorRole::Wo, l, dim, dim);
      add(TensorRole::FfnNorm, l, 1, dim);
      add(TensorRole::W1, l, hidden, dim);
      add(TensorRole::W2, l, dim, hidden);
      add(TensorRole::W3, l, hidden, dim);
    }
    add(TensorRole::FinalNorm, kNoLayer, 1, dim);
    if (!shared) add(TensorRole::Classifier, kNoLayer, vocab, dim);
  }
  const std::vector<float>& d(TensorRole role, uint32_t layer) const { return t.at(tensor_name(role, layer)).data; }

  void params(Bytes& w, int32_t vocab_field) const {
    for (int32_t v : {dim, hidden, layers, heads, kv_heads, vocab_field, seq}) w.i32(v);
  }

  // export.py legacy_export order, freq_cis filled with a sentinel.
  std::vector<uint8_t> legacy(float freq_sentinel) const {
    Bytes w;
    params(w, shared ? vocab : -vocab);
    w.f32s(d(TensorRole::TokenEmbedding, kNoLayer));
    for (TensorRole r : {TensorRole::AttnNorm, TensorRole::Wq, TensorRole::Wk, TensorRole::Wv, TensorRole::Wo,
                         TensorRole::FfnNorm, TensorRole::W1, TensorRole::W2, TensorRole::W3})
      for (uint32_t l = 0; l < uint32_t(layers); ++l) w.f32s(d(r, l));
    w.f32s(d(TensorRole::FinalNorm, kNoLayer));
    for (int i = 0; i < 2 * seq * head_size / 2; ++i) w.f32(freq_sentinel);
    if (!shared) w.f32s(d(TensorRole::Classifier, kNoLayer));
    return w.b;
  }

  void ak42_header(Bytes& w, int32_t version) const {
    w.u32(0x616b3432u);
    w.i32(version);
    params(w, vocab);
    w.u8(shared ? 1 : 0);
  }

  // export.py version1_export order.
  std::vector<uint8_t> v1() const {
    Bytes w;
    ak42_header(w, 1);
    w.pad_to(256);
    for (uint32_t l = 0; l < uint32_t(layers); ++l) w.f32s(d(TensorRole::AttnNorm, l));
    for (uint32_t l = 0; l < uint32_t(layers); ++l) w.f32s(d(TensorRole::FfnNorm, l));
    w.f32s(d(TensorRole::FinalNorm, kNoLayer));
    w.f32s(d(TensorRole::TokenEmbedding, kNoLayer));
    for (TensorRole r : matrix_roles())
      for (uint32_t l = 0; l < uint32_t(layers); ++l) w.f32s(d(r, l));
    if (!shared) w.f32s(d(TensorRole::Classifier, kNoLayer));
    return w.b;
  }

  static std::vector<TensorRole> matrix_roles() {
    return {TensorRole::Wq, TensorRole::Wk, TensorRole::Wv, TensorRole::Wo,
            TensorRole::W1, TensorRole::W2, TensorRole::W3};
  }

  // export.py version2_export / runq.c order, group size 2. The matrices get
  // synthetic int8 values and scales; their exact dequantized values
  // (q * scale in float) replace the stored data so `d()` is the expectation.
  std::vector<uint8_t> v2(int32_t group) {
    Bytes w;
    ak42_header(w, 2);
    w.i32(group);
    w.pad_to(256);
    for (uint32_t l = 0; l < uint32_t(layers); ++l) w.f32s(d(TensorRole::AttnNorm, l));
    for (uint32_t l = 0; l < uint32_t(layers); ++l) w.f32s(d(TensorRole::FfnNorm, l));
    w.f32s(d(TensorRole::FinalNorm, kNoLayer));
    int id = 0;
    auto q80 = [&](TensorRole r, uint32_t layer) {
      std::vector<float>& x = t.at(tensor_name(r, layer)).data;
      ++id;
      std::vector<float> scales;
      for (size_t g = 0; g < x.size() / size_t(group); ++g) scales.push_back(0.125f * float(g + 1) + float(id));
      for (size_t i = 0; i < x.size(); ++i) {
        int8_t q = int8_t(int((i * 37 + size_t(id) * 11) % 256) - 128);  // covers -128..127
        w.u8(uint8_t(q));
        x[i] = float(q) * scales[i / size_t(group)];
      }
      w.f32s(scales);
    };
    q80(TensorRole::TokenEmbedding, kNoLayer);
    for (TensorRole r : matrix_roles())
      for (uint32_t l = 0; l < uint32_t(layers); ++l) q80(r, l);
    if (!shared) q80(TensorRole::Classifier, kNoLayer);
    return w.b;
  }

  // Every tensor of `m` matches the expectation bit for bit, in the documented order.
  void expect_matches(const HostModel& m) const {
    const auto& c = m.config;
    EXPECT_EQ(c.dim, uint32_t(dim));
    EXPECT_EQ(c.hidden_dim, uint32_t(hidden));
    EXPECT_EQ(c.n_layers, uint32_t(layers));
    EXPECT_EQ(c.n_heads, uint32_t(heads));
    EXPECT_EQ(c.n_kv_heads, uint32_t(kv_heads));
    EXPECT_EQ(c.vocab_size, uint32_t(vocab));
    EXPECT_EQ(c.seq_len, uint32_t(seq));
    EXPECT_EQ(c.shared_classifier, shared);
    ASSERT_EQ(m.tensors.size(), t.size());
    for (const HostTensor& x : m.tensors) {
      auto it = t.find(x.name);
      ASSERT_NE(it, t.end()) << x.name;
      EXPECT_EQ(x.role, it->second.role) << x.name;
      EXPECT_EQ(x.layer, it->second.layer) << x.name;
      EXPECT_EQ(x.rows, it->second.rows) << x.name;
      EXPECT_EQ(x.cols, it->second.cols) << x.name;
      EXPECT_TRUE(bits_equal(x.data, it->second.data)) << x.name;
    }
  }
};

// The documented tensor order and shapes for a config.
void expect_order_and_shapes(const HostModel& m) {
  const auto& c = m.config;
  const uint32_t hs = c.dim / c.n_heads, kv = c.n_kv_heads * hs;
  struct E {
    TensorRole role;
    uint32_t layer, rows, cols;
  };
  std::vector<E> want{{TensorRole::TokenEmbedding, kNoLayer, c.vocab_size, c.dim}};
  for (uint32_t l = 0; l < c.n_layers; ++l) {
    want.push_back({TensorRole::AttnNorm, l, 1, c.dim});
    want.push_back({TensorRole::Wq, l, c.n_heads * hs, c.dim});
    want.push_back({TensorRole::Wk, l, kv, c.dim});
    want.push_back({TensorRole::Wv, l, kv, c.dim});
    want.push_back({TensorRole::Wo, l, c.dim, c.n_heads * hs});
    want.push_back({TensorRole::FfnNorm, l, 1, c.dim});
    want.push_back({TensorRole::W1, l, c.hidden_dim, c.dim});
    want.push_back({TensorRole::W2, l, c.dim, c.hidden_dim});
    want.push_back({TensorRole::W3, l, c.hidden_dim, c.dim});
  }
  want.push_back({TensorRole::FinalNorm, kNoLayer, 1, c.dim});
  if (!c.shared_classifier) want.push_back({TensorRole::Classifier, kNoLayer, c.vocab_size, c.dim});
  ASSERT_EQ(m.tensors.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const HostTensor& t = m.tensors[i];
    EXPECT_EQ(t.role, want[i].role) << i;
    EXPECT_EQ(t.layer, want[i].layer) << i;
    EXPECT_EQ(t.name, tensor_name(want[i].role, want[i].layer)) << i;
    EXPECT_EQ(t.rows, want[i].rows) << t.name;
    EXPECT_EQ(t.cols, want[i].cols) << t.name;
    EXPECT_EQ(t.data.size(), size_t(t.rows) * t.cols) << t.name;
  }
}

// ---------------------------------------------------------------------------

TEST(TensorName, Strings) {
  EXPECT_EQ(tensor_name(TensorRole::TokenEmbedding, kNoLayer), "tok_embeddings");
  EXPECT_EQ(tensor_name(TensorRole::AttnNorm, 3), "layers.3.attn_norm");
  EXPECT_EQ(tensor_name(TensorRole::Wq, 3), "layers.3.attn.wq");
  EXPECT_EQ(tensor_name(TensorRole::Wk, 3), "layers.3.attn.wk");
  EXPECT_EQ(tensor_name(TensorRole::Wv, 3), "layers.3.attn.wv");
  EXPECT_EQ(tensor_name(TensorRole::Wo, 3), "layers.3.attn.wo");
  EXPECT_EQ(tensor_name(TensorRole::FfnNorm, 3), "layers.3.ffn_norm");
  EXPECT_EQ(tensor_name(TensorRole::W1, 3), "layers.3.ffn.w1");
  EXPECT_EQ(tensor_name(TensorRole::W2, 0), "layers.0.ffn.w2");
  EXPECT_EQ(tensor_name(TensorRole::W3, 11), "layers.11.ffn.w3");
  EXPECT_EQ(tensor_name(TensorRole::FinalNorm, kNoLayer), "norm");
  EXPECT_EQ(tensor_name(TensorRole::Classifier, kNoLayer), "output");
  EXPECT_LT(tensor_name(TensorRole::AttnNorm, 0xFFFFFFFEu).size(), size_t(stk::kTensorNameLen));
}

TEST(TensorName, RejectsInconsistentLayer) {
  EXPECT_THROW(tensor_name(TensorRole::Wq, kNoLayer), std::invalid_argument);
  EXPECT_THROW(tensor_name(TensorRole::FinalNorm, 0), std::invalid_argument);
  EXPECT_THROW(tensor_name(static_cast<TensorRole>(99), kNoLayer), std::invalid_argument);
}

TEST(Llama2cImport, LegacyHyperParametersAndLayout) {
  REQUIRE_FILE(path, legacy_path(), "stories260K.bin");
  const HostModel m = import_llama2c(path);
  const auto& c = m.config;
  EXPECT_EQ(c.dim, 64u);
  EXPECT_EQ(c.hidden_dim, 172u);
  EXPECT_EQ(c.n_layers, 5u);
  EXPECT_EQ(c.n_heads, 8u);
  EXPECT_EQ(c.n_kv_heads, 4u);
  EXPECT_EQ(c.vocab_size, 512u);
  EXPECT_EQ(c.seq_len, 512u);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_EQ(c.rope_theta, 10000.f);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(m.source_format, "llama2c-legacy");
  EXPECT_EQ(m.tensors.size(), 1u + 5u * 9u + 1u);
  expect_order_and_shapes(m);
  EXPECT_EQ(m.find(TensorRole::Classifier, kNoLayer), nullptr);

  // Spot-check against raw file offsets: first embedding value, and the final
  // norm which sits after every per-layer block (so any size error shows).
  const std::vector<uint8_t> raw = slurp(path);
  ASSERT_EQ(raw.size(), kLegacyBytes);
  auto raw_f32 = [&](size_t off) {
    float v;
    std::memcpy(&v, raw.data() + off, 4);
    return v;
  };
  const HostTensor* emb = m.find(TensorRole::TokenEmbedding, kNoLayer);
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->data[0], raw_f32(28));
  size_t floats_before_norm = 0;
  for (const HostTensor& t : m.tensors)
    if (t.role != TensorRole::FinalNorm) floats_before_norm += t.data.size();
  const HostTensor* norm = m.find(TensorRole::FinalNorm, kNoLayer);
  ASSERT_NE(norm, nullptr);
  for (size_t i = 0; i < norm->data.size(); ++i)
    EXPECT_EQ(norm->data[i], raw_f32(28 + 4 * (floats_before_norm + i))) << i;
  // RMSNorm gains of a trained model are positive-ish and O(1); a misaligned
  // read would pick up matrix values or the freq_cis tables instead.
  const HostTensor* last_w3 = m.find(TensorRole::W3, 4);
  ASSERT_NE(last_w3, nullptr);
  EXPECT_EQ(last_w3->data.back(), raw_f32(28 + 4 * (floats_before_norm - 1)));
}

TEST(Llama2cImport, FindConstAndMutable) {
  Tiny tiny(/*shared_classifier=*/true);
  TempFile f("tiny_shared.bin", tiny.legacy(7.f));
  HostModel m = import_llama2c(f.path());
  HostTensor* wk = m.find(TensorRole::Wk, 1);
  ASSERT_NE(wk, nullptr);
  EXPECT_EQ(wk->name, "layers.1.attn.wk");
  wk->data[0] = 42.f;
  const HostModel& cm = m;
  EXPECT_EQ(cm.find(TensorRole::Wk, 1)->data[0], 42.f);
  EXPECT_EQ(cm.find(TensorRole::Wk, 2), nullptr);
  EXPECT_EQ(cm.find(TensorRole::Classifier, kNoLayer), nullptr);
}

TEST(Llama2cImport, V1BitIdenticalToLegacy) {
  REQUIRE_FILE(legacy, legacy_path(), "stories260K.bin");
  REQUIRE_FILE(v1, existing(shared_models_dir(), "stories260K_v1.bin"), "stories260K_v1.bin");
  ASSERT_EQ(fs::file_size(v1), kV1Bytes);
  const HostModel a = import_llama2c(legacy);
  const HostModel b = import_llama2c(v1);
  EXPECT_EQ(b.source_format, "llama2c-v1");
  EXPECT_TRUE(b.config.shared_classifier);
  expect_order_and_shapes(b);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_TRUE(bits_equal(a.tensors[i].data, b.tensors[i].data)) << a.tensors[i].name;
  }
}

TEST(Llama2cImport, V2DequantizesWithinOneStepOfLegacy) {
  REQUIRE_FILE(legacy, legacy_path(), "stories260K.bin");
  REQUIRE_FILE(q80, existing(shared_models_dir(), "stories260K_q80.bin"), "stories260K_q80.bin");
  ASSERT_EQ(fs::file_size(q80), kQ80Bytes);
  const HostModel a = import_llama2c(legacy);
  const HostModel b = import_llama2c(q80);
  EXPECT_EQ(b.source_format, "llama2c-v2-int8(group 8)");
  EXPECT_TRUE(b.config.shared_classifier);
  expect_order_and_shapes(b);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  const size_t group = 8;
  double worst_ratio = 0;  // max error / (max|w| / 127) over all groups
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const HostTensor& ta = a.tensors[i];
    const HostTensor& tb = b.tensors[i];
    ASSERT_EQ(ta.data.size(), tb.data.size()) << ta.name;
    if (ta.rows == 1) {  // rmsnorm gains are stored in fp32
      EXPECT_TRUE(bits_equal(ta.data, tb.data)) << ta.name;
      continue;
    }
    bool differs = false;
    for (size_t g = 0; g < ta.data.size(); g += group) {  // groups over the flattened tensor
      float wmax = 0;
      for (size_t k = g; k < g + group; ++k) wmax = std::max(wmax, std::fabs(ta.data[k]));
      const float step = wmax / 127.f;
      for (size_t k = g; k < g + group; ++k) {
        const float err = std::fabs(ta.data[k] - tb.data[k]);
        differs |= err != 0;
        ASSERT_LE(err, step) << ta.name << " element " << k;
        if (step > 0) worst_ratio = std::max(worst_ratio, double(err) / double(step));
      }
    }
    EXPECT_TRUE(differs) << ta.name << " is bit-identical: not actually dequantized int8?";
  }
  EXPECT_LT(worst_ratio, 0.51);  // round-to-nearest: at most half a step
}

TEST(Llama2cImport, NegativeVocabLegacyHasSeparateOutput) {
  Tiny tiny(/*shared_classifier=*/false);
  const float sentinel = 12345.5f;
  TempFile f("tiny_sep.bin", tiny.legacy(sentinel));
  const HostModel m = import_llama2c(f.path());
  EXPECT_EQ(m.source_format, "llama2c-legacy");
  EXPECT_EQ(m.config.vocab_size, 5u);
  EXPECT_FALSE(m.config.shared_classifier);
  expect_order_and_shapes(m);
  tiny.expect_matches(m);
  const HostTensor* out = m.find(TensorRole::Classifier, kNoLayer);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->name, "output");
  EXPECT_EQ(&m.tensors.back(), out);
  EXPECT_TRUE(bits_equal(out->data, tiny.d(TensorRole::Classifier, kNoLayer)));
  for (const HostTensor& t : m.tensors)  // freq_cis was skipped, not decoded
    EXPECT_EQ(std::count(t.data.begin(), t.data.end(), sentinel), 0) << t.name;
}

TEST(Llama2cImport, SyntheticV1BothClassifierModes) {
  for (bool shared : {true, false}) {
    Tiny tiny(shared);
    TempFile f("tiny_v1.bin", tiny.v1());
    const HostModel m = import_llama2c(f.path());
    EXPECT_EQ(m.source_format, "llama2c-v1");
    expect_order_and_shapes(m);
    tiny.expect_matches(m);
  }
}

TEST(Llama2cImport, SyntheticV2DequantizesExactly) {
  for (bool shared : {true, false}) {
    Tiny tiny(shared);
    TempFile f("tiny_v2.bin", tiny.v2(2));
    const HostModel m = import_llama2c(f.path());
    EXPECT_EQ(m.source_format, "llama2c-v2-int8(group 2)");
    expect_order_and_shapes(m);
    tiny.expect_matches(m);  // w == float(q) * scale exactly, norms untouched
  }
}

TEST(Llama2cImport, MissingFile) {
  const std::string p = (fs::temp_directory_path() / "stk_llama2c_no_such_file.bin").string();
  try {
    import_llama2c(p);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open " + p + ": "), std::string::npos) << e.what();
  }
}

// Expect the import of `bytes` to fail with a message naming the file and
// containing `needle`.
void expect_rejected(const std::string& stem, const std::vector<uint8_t>& bytes, const std::string& needle) {
  std::string name;
  const std::string msg = import_error(stem, bytes, &name);
  ASSERT_FALSE(msg.empty()) << stem << ": imported without error, expected \"" << needle << "\"";
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(Llama2cImport, TruncatedAndOversizedFiles) {
  REQUIRE_FILE(path, legacy_path(), "stories260K.bin");
  const std::vector<uint8_t> good = slurp(path);
  ASSERT_EQ(good.size(), kLegacyBytes);

  std::vector<uint8_t> cut(good.begin(), good.begin() + 1000);
  expect_rejected("trunc.bin", cut, "truncated: expected 1056540 bytes, file has 1000");
  cut.assign(good.begin(), good.end() - 1);
  expect_rejected("trunc1.bin", cut, "truncated: expected 1056540 bytes, file has 1056539");
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  expect_rejected("trailing.bin", longer, "trailing garbage: expected 1056540 bytes, file has 1056541");
  expect_rejected("hdr.bin", std::vector<uint8_t>(good.begin(), good.begin() + 20), "truncated header");
  expect_rejected("empty.bin", {}, "truncated header");

  Tiny tiny(false);
  std::vector<uint8_t> v1 = tiny.v1();
  v1.pop_back();
  expect_rejected("trunc_v1.bin", v1, "truncated");
  std::vector<uint8_t> v2 = tiny.v2(2);
  v2.push_back(1);
  expect_rejected("trailing_v2.bin", v2, "trailing garbage");
  expect_rejected("hdr_v1.bin", std::vector<uint8_t>(v1.begin(), v1.begin() + 100), "truncated header");
}

TEST(Llama2cImport, CorruptLegacyHeaders) {
  REQUIRE_FILE(path, legacy_path(), "stories260K.bin");
  const std::vector<uint8_t> good = slurp(path);
  struct Case {
    const char* stem;
    size_t field;  // int32 index in the header
    int32_t value;
    const char* needle;
  } cases[] = {
      {"dim0.bin", 0, 0, "dim 0 must be positive"},
      {"dimneg.bin", 0, -64, "dim -64 must be positive"},
      {"dimhuge.bin", 0, 1 << 30, "dim 1073741824 exceeds the limit"},
      {"dimodd.bin", 0, 65, "dim 65 is not a multiple of n_heads 8"},
      {"hidden0.bin", 1, 0, "hidden_dim 0 must be positive"},
      {"layers.bin", 2, 1 << 20, "n_layers 1048576 exceeds the limit"},
      {"layers6.bin", 2, 6, "truncated: expected"},
      {"layers4.bin", 2, 4, "trailing garbage"},
      {"heads0.bin", 3, 0, "n_heads 0 must be positive"},
      {"heads_gt_dim.bin", 3, 128, "n_heads 128 exceeds the limit 64"},
      {"headsize_odd.bin", 3, 64, "head size 1"},
      {"kv3.bin", 4, 3, "n_heads 8 is not a multiple of n_kv_heads 3"},
      {"kv16.bin", 4, 16, "n_kv_heads 16 exceeds the limit 8"},
      {"vocab0.bin", 5, 0, "vocab_size 0 must be positive"},
      {"vocabmin.bin", 5, INT32_MIN, "vocab_size 2147483648 exceeds the limit"},
      {"vocabneg.bin", 5, -512, "truncated"},  // separate classifier expected but absent
      {"seq0.bin", 6, 0, "seq_len 0 must be positive"},
      {"seq.bin", 6, 513, "truncated"},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> b = good;
    put_i32(b, 4 * c.field, c.value);
    expect_rejected(c.stem, b, c.needle);
  }
}

TEST(Llama2cImport, CorruptAk42Headers) {
  Tiny tiny(true);
  const std::vector<uint8_t> v1 = tiny.v1();
  const std::vector<uint8_t> v2 = tiny.v2(2);
  {
    std::vector<uint8_t> b = v1;
    put_i32(b, 4, 3);
    expect_rejected("ver3.bin", b, "unsupported llama2.c export version 3");
  }
  {
    std::vector<uint8_t> b = v1;
    b[36] = 2;
    expect_rejected("flag.bin", b, "shared_classifier flag 2");
  }
  {
    std::vector<uint8_t> b = v1;
    b[200] = 1;
    expect_rejected("pad_v1.bin", b, "at offset 200 in the header padding");
  }
  {
    std::vector<uint8_t> b = v1;
    put_i32(b, 8 + 4 * 5, -5);  // v1 has an explicit flag; negative vocab is invalid
    expect_rejected("vocab_v1.bin", b, "vocab_size -5 must be positive");
  }
  {
    std::vector<uint8_t> b = v1;
    b[36] = 0;  // claims a separate classifier that is not there
    expect_rejected("noshare_v1.bin", b, "truncated");
  }
  {
    std::vector<uint8_t> b = v2;
    put_i32(b, 37, 0);
    expect_rejected("gs0.bin", b, "group_size 0 must be positive");
  }
  {
    std::vector<uint8_t> b = v2;
    put_i32(b, 37, -8);
    expect_rejected("gsneg.bin", b, "group_size -8 must be positive");
  }
  {
    std::vector<uint8_t> b = v2;
    put_i32(b, 37, 3);
    expect_rejected("gs3.bin", b, "group_size 3 does not divide the 20 values of tok_embeddings");
  }
  {
    std::vector<uint8_t> b = v2;
    put_i32(b, 37, 4);  // divides everything, but the layout no longer adds up
    expect_rejected("gs4.bin", b, "expected");
  }
  {
    std::vector<uint8_t> b = v2;
    b[41] = 9;
    expect_rejected("pad_v2.bin", b, "at offset 41 in the header padding");
  }
}

TEST(Llama2cImport, RejectsNonFiniteValuesAndForeignFiles) {
  Tiny tiny(true);
  {
    std::vector<uint8_t> b = tiny.v1();
    const float nan = std::nanf("");
    std::memcpy(b.data() + 256 + 4, &nan, 4);  // layers.0.attn_norm[1]
    expect_rejected("nan.bin", b, "non-finite value in layers.0.attn_norm at element 1");
  }
  {
    std::vector<uint8_t> b = tiny.v2(2);
    const float inf = INFINITY;
    // first scale of tok_embeddings: after the fp32 norms and its 20 int8 values
    const size_t off = 256 + 4 * (2 * 4 + 2 * 4 + 4) + 20;
    std::memcpy(b.data() + off, &inf, 4);
    expect_rejected("infscale.bin", b, "non-finite quantization scale in tok_embeddings");
  }
  {
    std::vector<uint8_t> b(4096, 0);
    std::memcpy(b.data(), "GGUF", 4);
    expect_rejected("model.gguf", b, "is a GGUF file");
  }
  {
    std::vector<uint8_t> b(4096, 0);
    std::memcpy(b.data(), stk::kFileMagic, sizeof(stk::kFileMagic));
    expect_rejected("model.stk", b, "is a stackrt .stk file");
  }
}

}  // namespace

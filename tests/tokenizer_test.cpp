// Tokenizer tests. Expected token ids come from hand-worked vocabularies built
// here, or from tok512.bin entries checked by reading the file independently
// (see TokBin below), never from the code under test.
#include "runtime/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace stk {
namespace {

std::string data_path(const char* name) {
#ifdef STK_TEST_DATA_DIR
  std::string dir = STK_TEST_DATA_DIR;
#else
  // __FILE__ is tests/tokenizer_test.cpp (absolute under CMake), so data/ is beside it.
  std::string dir = __FILE__;
  dir = dir.substr(0, dir.find_last_of('/') == std::string::npos ? 0 : dir.find_last_of('/') + 1) + "data";
  if (dir == "data") dir = "tests/data";
#endif
  return dir + "/" + name;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::vector<uint8_t> d;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return d;
  uint8_t buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) d.insert(d.end(), buf, buf + n);
  std::fclose(f);
  return d;
}

// An independent reading of a llama2.c tokenizer.bin, used as ground truth.
struct TokBin {
  int32_t max_len = 0;
  std::vector<float> scores;
  std::vector<std::string> tokens;
};

TokBin parse_tok_bin(const std::vector<uint8_t>& d, uint32_t vocab) {
  TokBin t;
  size_t off = 0;
  std::memcpy(&t.max_len, d.data(), 4);
  off = 4;
  for (uint32_t i = 0; i < vocab; ++i) {
    float s;
    int32_t len;
    std::memcpy(&s, d.data() + off, 4);
    std::memcpy(&len, d.data() + off + 4, 4);
    off += 8;
    t.scores.push_back(s);
    t.tokens.emplace_back(reinterpret_cast<const char*>(d.data() + off), static_cast<size_t>(len));
    off += static_cast<size_t>(len);
  }
  return t;
}

void put_i32(std::vector<uint8_t>* d, int32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  d->insert(d->end(), b, b + 4);
}
void put_f32(std::vector<uint8_t>* d, float v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  d->insert(d->end(), b, b + 4);
}

std::vector<uint8_t> make_tok_bin(const std::vector<std::pair<float, std::string>>& vocab, int32_t max_len) {
  std::vector<uint8_t> d;
  put_i32(&d, max_len);
  for (const auto& e : vocab) {
    put_f32(&d, e.first);
    put_i32(&d, static_cast<int32_t>(e.second.size()));
    d.insert(d.end(), e.second.begin(), e.second.end());
  }
  return d;
}

// The llama2.c layout: <unk>, <s>, </s>, then the 256 byte tokens at 3..258.
std::vector<std::pair<float, std::string>> base_vocab() {
  std::vector<std::pair<float, std::string>> v = {{0.f, "<unk>"}, {0.f, "\n<s>\n"}, {0.f, "\n</s>\n"}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.push_back({0.f, name});
  }
  return v;
}

// A section plus its view; storage is uint32_t so the section is 4-byte aligned.
struct Built {
  Status status = Status::Ok;
  std::vector<uint32_t> storage;
  size_t size = 0;
  TokenizerView view{};
  const uint8_t* bytes() const { return reinterpret_cast<const uint8_t*>(storage.data()); }
  uint8_t* bytes() { return reinterpret_cast<uint8_t*>(storage.data()); }
};

Built build(const std::vector<uint8_t>& bin, uint32_t vocab) {
  Built b;
  b.status = tokenizer_build_section(bin.data(), bin.size(), vocab, nullptr, 0, &b.size, nullptr);
  if (b.status != Status::Ok) return b;
  b.storage.assign((b.size + 3) / 4, 0xDEADBEEFu);
  size_t written = 0;
  b.status = tokenizer_build_section(bin.data(), bin.size(), vocab, b.bytes(), b.size, &written, nullptr);
  if (b.status != Status::Ok) return b;
  EXPECT_EQ(written, b.size);
  b.status = tokenizer_view(b.bytes(), b.size, &b.view, nullptr);
  return b;
}

std::vector<int32_t> encode(const TokenizerView& t, const std::string& text, bool bos, bool eos) {
  std::vector<int32_t> out(text.size() + 3);
  size_t n = 0;
  Status s = tokenizer_encode(t, text.data(), text.size(), bos, eos, out.data(), out.size(), &n, nullptr);
  EXPECT_EQ(s, Status::Ok) << "text: " << text;
  out.resize(n);
  return out;
}

std::string decode_all(const TokenizerView& t, const std::vector<int32_t>& ids, int32_t first_prev) {
  std::string s;
  int32_t prev = first_prev;
  for (int32_t id : ids) {
    size_t len = 0;
    const char* p = tokenizer_decode(t, prev, id, &len);
    EXPECT_NE(p, nullptr);
    if (p != nullptr) s.append(p, len);
    prev = id;
  }
  return s;
}

class Tok512 : public ::testing::Test {
 protected:
  void SetUp() override {
    bin_ = read_file(data_path("tok512.bin"));
    ASSERT_EQ(bin_.size(), 6227u) << data_path("tok512.bin");
    ref_ = parse_tok_bin(bin_, 512);
    b_ = build(bin_, 512);
    ASSERT_EQ(b_.status, Status::Ok);
  }
  int32_t id_of(const std::string& s) const {
    auto it = std::find(ref_.tokens.begin(), ref_.tokens.end(), s);
    return it == ref_.tokens.end() ? -1 : static_cast<int32_t>(it - ref_.tokens.begin());
  }
  std::vector<uint8_t> bin_;
  TokBin ref_;
  Built b_;
};

// ---------------------------------------------------------------- build/view

TEST_F(Tok512, BuildSizeAndHeader) {
  // 32 header + 512 scores + 513 offsets + 512 sorted (4 bytes each), then the
  // 6227 - 4 - 512*8 = 2127 token bytes padded to 2128.
  EXPECT_EQ(b_.size, 32u + 512 * 4 + 513 * 4 + 512 * 4 + 2128);
  const uint32_t* h = b_.storage.data();
  EXPECT_EQ(h[0], 0x4B4F5453u);
  EXPECT_EQ(std::memcmp(h, "STOK", 4), 0);
  EXPECT_EQ(h[5], 2127u);
  EXPECT_EQ(h[6], 0u);
  EXPECT_EQ(h[7], 0u);
  EXPECT_EQ(b_.view.vocab_size, 512u);
  EXPECT_EQ(b_.view.max_token_length, 7u);
  EXPECT_EQ(b_.view.bos_id, 1u);
  EXPECT_EQ(b_.view.eos_id, 2u);
}

TEST_F(Tok512, ViewMatchesFileContents) {
  const TokenizerView& v = b_.view;
  for (uint32_t i = 0; i < 512; ++i) {
    ASSERT_EQ(v.scores[i], ref_.scores[i]) << i;
    std::string tok(v.bytes + v.offsets[i], v.offsets[i + 1] - v.offsets[i]);
    ASSERT_EQ(tok, ref_.tokens[i]) << i;
  }
  EXPECT_EQ(ref_.tokens[1], "\n<s>\n");
  EXPECT_EQ(ref_.tokens[3], "<0x00>");
  EXPECT_EQ(ref_.tokens[13], "<0x0A>");
  EXPECT_EQ(ref_.tokens[410], " ");
}

TEST_F(Tok512, SortedMatchesIndependentSort) {
  std::vector<uint32_t> ids(512);
  for (uint32_t i = 0; i < 512; ++i) ids[i] = i;
  // std::string compares like memcmp (unsigned), shorter first on a prefix.
  std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
    return ref_.tokens[a] != ref_.tokens[b] ? ref_.tokens[a] < ref_.tokens[b] : a < b;
  });
  for (uint32_t i = 0; i < 512; ++i) ASSERT_EQ(b_.view.sorted[i], ids[i]) << i;
}

TEST_F(Tok512, BuildRejectsBadInput) {
  size_t sz = 0;
  // Every strict prefix of the file is truncated somewhere.
  for (size_t n = 0; n < bin_.size(); ++n) {
    ASSERT_EQ(tokenizer_build_section(bin_.data(), n, 512, nullptr, 0, &sz, nullptr), Status::BadFormat) << n;
  }
  EXPECT_EQ(tokenizer_build_section(bin_.data(), bin_.size(), 513, nullptr, 0, &sz, nullptr),
            Status::BadFormat);
  char buf[160];
  Message m{buf, sizeof buf};
  EXPECT_EQ(tokenizer_build_section(bin_.data(), bin_.size(), 511, nullptr, 0, &sz, &m), Status::BadFormat);
  EXPECT_NE(std::strstr(buf, "after 511 tokens"), nullptr) << buf;
  std::vector<uint8_t> extra = bin_;
  extra.push_back(0);
  EXPECT_EQ(tokenizer_build_section(extra.data(), extra.size(), 512, nullptr, 0, &sz, nullptr),
            Status::BadFormat);
  EXPECT_EQ(tokenizer_build_section(bin_.data(), bin_.size(), 2, nullptr, 0, &sz, nullptr),
            Status::InvalidArgument);
  EXPECT_EQ(tokenizer_build_section(bin_.data(), bin_.size(), 512, nullptr, 0, nullptr, nullptr),
            Status::InvalidArgument);
  EXPECT_EQ(tokenizer_build_section(nullptr, 10, 512, nullptr, 0, &sz, nullptr), Status::InvalidArgument);

  std::vector<uint8_t> bad = bin_;
  int32_t v = 300;  // max_token_length above the 256 limit
  std::memcpy(bad.data(), &v, 4);
  EXPECT_EQ(tokenizer_build_section(bad.data(), bad.size(), 512, nullptr, 0, &sz, nullptr),
            Status::BadFormat);
  v = 6;  // below the real longest token (7)
  std::memcpy(bad.data(), &v, 4);
  EXPECT_EQ(tokenizer_build_section(bad.data(), bad.size(), 512, nullptr, 0, &sz, nullptr),
            Status::BadFormat);
  bad = bin_;
  v = -1;  // token 0's length
  std::memcpy(bad.data() + 8, &v, 4);
  EXPECT_EQ(tokenizer_build_section(bad.data(), bad.size(), 512, nullptr, 0, &sz, nullptr),
            Status::BadFormat);
  bad = bin_;
  float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(bad.data() + 4, &nan, 4);
  EXPECT_EQ(tokenizer_build_section(bad.data(), bad.size(), 512, nullptr, 0, &sz, nullptr),
            Status::BadFormat);
}

TEST_F(Tok512, BuildRejectsSmallOrMisalignedOutput) {
  std::vector<uint32_t> out(b_.size / 4 + 2);
  uint8_t* o = reinterpret_cast<uint8_t*>(out.data());
  size_t sz = 0;
  char buf[160];
  Message m{buf, sizeof buf};
  EXPECT_EQ(tokenizer_build_section(bin_.data(), bin_.size(), 512, o, b_.size - 1, &sz, &m),
            Status::BufferTooSmall);
  EXPECT_NE(std::strstr(buf, "need 8308 bytes, have 8307"), nullptr) << buf;
  EXPECT_EQ(tokenizer_build_section(bin_.data(), bin_.size(), 512, o + 1, b_.size + 4, &sz, nullptr),
            Status::InvalidArgument);
  // Building twice gives identical bytes.
  EXPECT_EQ(tokenizer_build_section(bin_.data(), bin_.size(), 512, o, b_.size, &sz, nullptr), Status::Ok);
  EXPECT_EQ(std::memcmp(o, b_.bytes(), b_.size), 0);
}

class Tok512Corrupt : public Tok512 {
 protected:
  // Word index helpers into the section (u32 granularity).
  size_t scores_w() const { return 8; }
  size_t offsets_w() const { return 8 + 512; }
  size_t sorted_w() const { return 8 + 512 + 513; }
  Status view_of(const std::vector<uint32_t>& s, size_t size, char* buf = nullptr, size_t cap = 0) {
    Message m{buf, cap};
    TokenizerView v;
    return tokenizer_view(reinterpret_cast<const uint8_t*>(s.data()), size, &v, buf ? &m : nullptr);
  }
};

TEST_F(Tok512Corrupt, SizeMismatch) {
  const auto& s = b_.storage;
  for (size_t size : {size_t{0}, size_t{31}, size_t{32}, b_.size - 1, b_.size - 4}) {
    EXPECT_EQ(view_of(s, size), Status::BadFormat) << size;
  }
  std::vector<uint32_t> longer = s;
  longer.push_back(0);
  EXPECT_EQ(view_of(longer, b_.size + 4), Status::BadFormat);
  EXPECT_EQ(view_of(s, b_.size), Status::Ok);
}

TEST_F(Tok512Corrupt, HeaderFields) {
  struct Case {
    size_t word;
    uint32_t value;
  };
  for (Case c : {Case{0, 0x4B4F5454u}, Case{1, 511}, Case{1, 2}, Case{1, 0xFFFFFFFFu}, Case{2, 257},
                 Case{2, 6}, Case{3, 512}, Case{4, 0x80000000u}, Case{5, 2128}, Case{6, 1}, Case{7, 1}}) {
    std::vector<uint32_t> s = b_.storage;
    s[c.word] = c.value;
    EXPECT_EQ(view_of(s, b_.size), Status::BadFormat) << "word " << c.word << " = " << c.value;
  }
}

TEST_F(Tok512Corrupt, Offsets) {
  const size_t o = offsets_w();
  std::vector<uint32_t> s = b_.storage;
  s[o + 512] = 2128;  // past bytes_size
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  s[o + 0] = 1;
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  s[o + 100] = s[o + 101] + 1;  // decreasing
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  s[o + 300] = 0xFFFFFFF0u;  // far out of range
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  s[o + 301] = s[o + 300] + 8;  // token 300 longer than max_token_length (7)
  s[o + 302] = std::max(s[o + 302], s[o + 301]);
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&s[scores_w() + 7], &nan, 4);
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  reinterpret_cast<uint8_t*>(s.data())[b_.size - 1] = 1;  // the padding byte
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
}

TEST_F(Tok512Corrupt, Sorted) {
  const size_t so = sorted_w();
  std::vector<uint32_t> s = b_.storage;
  std::swap(s[so + 200], s[so + 201]);
  char buf[200];
  EXPECT_EQ(view_of(s, b_.size, buf, sizeof buf), Status::BadFormat);
  EXPECT_NE(std::strstr(buf, "out of order"), nullptr) << buf;
  s = b_.storage;
  s[so + 0] = 512;
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  s[so + 11] = s[so + 10];  // duplicate id
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
  s = b_.storage;
  std::reverse(s.begin() + static_cast<long>(so), s.begin() + static_cast<long>(so) + 512);
  EXPECT_EQ(view_of(s, b_.size), Status::BadFormat);
}

TEST_F(Tok512Corrupt, MisalignedAndNull) {
  std::vector<uint32_t> s(b_.storage.size() + 1);
  uint8_t* p = reinterpret_cast<uint8_t*>(s.data()) + 1;
  std::memcpy(p, b_.bytes(), b_.size);
  TokenizerView v;
  EXPECT_EQ(tokenizer_view(p, b_.size, &v, nullptr), Status::InvalidArgument);
  EXPECT_EQ(tokenizer_view(p + 1, b_.size, &v, nullptr), Status::InvalidArgument);
  EXPECT_EQ(tokenizer_view(nullptr, b_.size, &v, nullptr), Status::InvalidArgument);
  EXPECT_EQ(tokenizer_view(b_.bytes(), b_.size, nullptr, nullptr), Status::InvalidArgument);
}

// Random byte flips: the view must either reject the section or yield one that
// encodes and decodes without touching memory outside it (checked by ASan).
TEST_F(Tok512Corrupt, RandomFlipsNeverCrash) {
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint32_t> s = b_.storage;
    uint8_t* p = reinterpret_cast<uint8_t*>(s.data());
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) p[rng() % b_.size] ^= static_cast<uint8_t>(1u << (rng() % 8));
    TokenizerView v;
    if (tokenizer_view(p, b_.size, &v, nullptr) != Status::Ok) continue;
    ++accepted;
    const std::string text = "Once upon a time, h\xC3\xA9llo \xF0\x9F\x98\x80!";
    int32_t out[64];
    size_t n = 0;
    Status st = tokenizer_encode(v, text.data(), text.size(), true, true, out, 64, &n, nullptr);
    if (st == Status::Ok) {
      for (size_t i = 0; i < n; ++i) ASSERT_LT(static_cast<uint32_t>(out[i]), v.vocab_size);
    }
    for (int32_t id = -1; id <= 512; ++id) {
      size_t len = 0;
      const char* piece = tokenizer_decode(v, 1, id, &len);
      if (piece != nullptr && len > 0) {
        volatile char c = piece[len - 1];
        (void)c;
      }
    }
  }
  // Flips inside token bytes or scores keep the section valid often enough.
  EXPECT_GT(accepted, 0);
}

// ---------------------------------------------------------------- encode

// Hand-worked vocabulary: after the 259 llama2.c ids, these extras (id: string
// score). Merges go by the merged string's score, never by position or id.
struct Tiny : public ::testing::Test {
  enum : int32_t { kSp = 259, kA, kB, kC, kAB, kBC, kABC, kSpA, kSpAB, kAA, kCC, kBosSp };
  void SetUp() override {
    auto v = base_vocab();
    v.push_back({-1000.f, " "});       // 259
    v.push_back({-1000.f, "a"});       // 260
    v.push_back({-1000.f, "b"});       // 261
    v.push_back({-1000.f, "c"});       // 262
    v.push_back({-5.f, "ab"});         // 263
    v.push_back({-1.f, "bc"});         // 264
    v.push_back({-3.f, "abc"});        // 265
    v.push_back({-4.f, " a"});         // 266
    v.push_back({-2.f, " ab"});        // 267
    v.push_back({-2.f, "aa"});         // 268
    v.push_back({-1e10f, "cc"});       // 269: at llama2.c's start score, so never merged
    v.push_back({-0.5f, "\n<s>\n "});  // 270: BOS string + space
    bin_ = make_tok_bin(v, 6);
    b_ = build(bin_, static_cast<uint32_t>(v.size()));
    ASSERT_EQ(b_.status, Status::Ok);
  }
  std::vector<uint8_t> bin_;
  Built b_;
};

TEST_F(Tiny, MergeOrderFollowsScores) {
  // [" ", a, b, c]: pairs " a"(-4) ab(-5) bc(-1) -> bc; [" ", a, bc]: " a"(-4)
  // abc(-3) -> abc; " abc" is not a token. Merging left to right would give
  // [" ab", c] instead.
  EXPECT_EQ(encode(b_.view, "abc", false, false), (std::vector<int32_t>{kSp, kABC}));
  // [" ", a, b]: " a"(-4) ab(-5) -> " a"; " ab" needs the pair (" a", b) -> " ab".
  EXPECT_EQ(encode(b_.view, "ab", false, false), (std::vector<int32_t>{kSpAB}));
}

TEST_F(Tiny, EqualScoresMergeTheFirstPair) {
  // [" ", a, a, a]: " a"(-4) aa(-2) aa(-2) -> first aa; then " aa" and "aaa"
  // are not tokens. Taking the last pair would end as [" a", aa].
  EXPECT_EQ(encode(b_.view, "aaa", false, false), (std::vector<int32_t>{kSp, kAA, kA}));
}

TEST_F(Tiny, ScoreAtStartThresholdNeverMerges) {
  EXPECT_EQ(encode(b_.view, "cc", false, false), (std::vector<int32_t>{kSp, kC, kC}));
}

TEST_F(Tiny, BosAndEosAndEmptyText) {
  EXPECT_EQ(encode(b_.view, "", false, false), (std::vector<int32_t>{}));
  EXPECT_EQ(encode(b_.view, "", true, true), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(encode(b_.view, "abc", false, true), (std::vector<int32_t>{kSp, kABC, 2}));
  // llama2.c merges over the whole sequence, BOS included: "\n<s>\n" + " "
  // is token 270 here (real vocabularies have no such token).
  EXPECT_EQ(encode(b_.view, "b", true, false), (std::vector<int32_t>{kBosSp, kB}));
}

TEST_F(Tiny, ByteFallback) {
  // U+00E9 is not a token: one token per byte, id = byte + 3.
  EXPECT_EQ(encode(b_.view, "\xC3\xA9", false, false), (std::vector<int32_t>{kSp, 0xC3 + 3, 0xA9 + 3}));
  // 'x' is not a token either.
  EXPECT_EQ(encode(b_.view, "xa", false, false), (std::vector<int32_t>{kSp, 'x' + 3, kA}));
  // llama2.c groups an ASCII byte with a following stray continuation byte, so
  // even the known token "a" falls back to its byte here.
  EXPECT_EQ(encode(b_.view, "a\x81", false, false), (std::vector<int32_t>{kSp, 'a' + 3, 0x81 + 3}));
  // Groups hold at most 4 bytes: five continuation bytes are two groups.
  EXPECT_EQ(encode(b_.view, std::string(5, '\x80'), false, false).size(), 6u);
  // A NUL byte is input like any other (the text is length-delimited).
  EXPECT_EQ(encode(b_.view, std::string("a\0b", 3), false, false), (std::vector<int32_t>{kSpA, 3, kB}));
}

TEST_F(Tiny, BufferTooSmall) {
  int32_t out[8];
  size_t n = 99;
  char buf[128];
  Message m{buf, sizeof buf};
  // Before merging, "abc" is 4 tokens even though the result is 2.
  EXPECT_EQ(tokenizer_encode(b_.view, "abc", 3, false, false, out, 3, &n, &m), Status::BufferTooSmall);
  EXPECT_EQ(n, 0u);
  EXPECT_NE(std::strstr(buf, "need 4 tokens"), nullptr) << buf;
  EXPECT_NE(std::strstr(buf, "have 3"), nullptr) << buf;
  EXPECT_EQ(tokenizer_encode(b_.view, "abc", 3, false, false, out, 4, &n, &m), Status::Ok);
  EXPECT_EQ(n, 2u);
  // BOS fits, EOS does not.
  EXPECT_EQ(tokenizer_encode(b_.view, "", 0, true, true, out, 1, &n, &m), Status::BufferTooSmall);
  EXPECT_NE(std::strstr(buf, "need 2 tokens, have 1"), nullptr) << buf;
  EXPECT_EQ(tokenizer_encode(b_.view, "abc", 3, true, true, nullptr, 0, &n, nullptr), Status::BufferTooSmall);
  EXPECT_EQ(tokenizer_encode(b_.view, "", 0, false, false, nullptr, 0, &n, nullptr), Status::Ok);
  EXPECT_EQ(n, 0u);
}

TEST_F(Tiny, InvalidArguments) {
  int32_t out[8];
  size_t n = 0;
  EXPECT_EQ(tokenizer_encode(b_.view, nullptr, 3, false, false, out, 8, &n, nullptr),
            Status::InvalidArgument);
  EXPECT_EQ(tokenizer_encode(b_.view, "a", 1, false, false, nullptr, 8, &n, nullptr),
            Status::InvalidArgument);
  EXPECT_EQ(tokenizer_encode(b_.view, "a", 1, false, false, out, 8, nullptr, nullptr),
            Status::InvalidArgument);
  TokenizerView empty{};
  EXPECT_EQ(tokenizer_encode(empty, "a", 1, false, false, out, 8, &n, nullptr), Status::InvalidArgument);
  size_t len = 7;
  EXPECT_EQ(tokenizer_decode(empty, 0, 0, &len), nullptr);
  EXPECT_EQ(len, 0u);
}

TEST(TokenizerEncode, VocabWithoutSpaceOrBytes) {
  // Only <unk>, <s>, </s>, "a": no dummy-prefix token and no byte tokens.
  auto bin = make_tok_bin({{0.f, "<unk>"}, {0.f, "\n<s>\n"}, {0.f, "\n</s>\n"}, {0.f, "a"}}, 6);
  Built b = build(bin, 4);
  ASSERT_EQ(b.status, Status::Ok);
  int32_t out[8];
  size_t n = 0;
  EXPECT_EQ(tokenizer_encode(b.view, "a", 1, true, false, out, 8, &n, nullptr), Status::Unsupported);
  EXPECT_EQ(tokenizer_encode(b.view, "", 0, true, false, out, 8, &n, nullptr), Status::Ok);
  EXPECT_EQ(n, 1u);

  // With " " but still no byte tokens: 'z' would need id 'z' + 3 = 125.
  bin = make_tok_bin({{0.f, "<unk>"}, {0.f, "\n<s>\n"}, {0.f, "\n</s>\n"}, {0.f, " "}}, 6);
  b = build(bin, 4);
  ASSERT_EQ(b.status, Status::Ok);
  char buf[160];
  Message m{buf, sizeof buf};
  EXPECT_EQ(tokenizer_encode(b.view, "z", 1, false, false, out, 8, &n, &m), Status::Unsupported);
  EXPECT_NE(std::strstr(buf, "125"), nullptr) << buf;
}

TEST_F(Tok512, KnownTokenIds) {
  // Ids checked against the file: each piece is the expected word with its
  // leading space, and they concatenate to " Once upon a time".
  const std::vector<int32_t> ids = encode(b_.view, "Once upon a time", true, false);
  ASSERT_EQ(ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(ref_.tokens[403], " Once");
  EXPECT_EQ(ref_.tokens[407], " upon");
  EXPECT_EQ(ref_.tokens[261], " a");
  EXPECT_EQ(ref_.tokens[378], " time");
  EXPECT_EQ(encode(b_.view, "a", false, true), (std::vector<int32_t>{id_of(" a"), 2}));
  // "é" is a token in this vocabulary, the emoji is not (4 byte tokens).
  EXPECT_EQ(encode(b_.view, "h\xC3\xA9llo \xF0\x9F\x98\x80", true, false),
            (std::vector<int32_t>{1, id_of(" h"), id_of("\xC3\xA9"), id_of("ll"), id_of("o"), id_of(" "),
                                  0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}));
}

TEST_F(Tok512, CapacityLenPlus3AlwaysSuffices) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 256);
    std::vector<int32_t> out(text.size() + 3);
    size_t n = 0;
    ASSERT_EQ(
        tokenizer_encode(b_.view, text.data(), text.size(), true, true, out.data(), out.size(), &n, nullptr),
        Status::Ok);
    ASSERT_GE(n, 2u);
    // Decoding without BOS in front reproduces the bytes behind the dummy space.
    std::vector<int32_t> body(out.begin() + 1, out.begin() + static_cast<long>(n) - 1);
    ASSERT_EQ(decode_all(b_.view, body, 0), text.empty() ? "" : " " + text);
  }
}

// ---------------------------------------------------------------- decode

TEST_F(Tok512, RoundTrip) {
  const std::string texts[] = {
      "Once upon a time, there was a little girl named Lily.",
      "Lily's mom said, \"Lily, let's go to the park.\"\nThe end.",
      "  leading spaces and trailing  ",
      "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC \xF0\x9F\x98\x80",
      "tabs\tand\r\nnewlines\n\n",
      "x",
  };
  for (const std::string& text : texts) {
    // After BOS the dummy-prefix space is stripped, so the text comes back as is.
    std::vector<int32_t> ids = encode(b_.view, text, true, false);
    ASSERT_EQ(ids.front(), 1);
    std::vector<int32_t> body(ids.begin() + 1, ids.end());
    EXPECT_EQ(decode_all(b_.view, body, 1), text);
    // Without BOS in front the dummy prefix shows up as a leading space.
    EXPECT_EQ(decode_all(b_.view, body, 0), " " + text);
  }
}

TEST_F(Tok512, DecodeRules) {
  size_t len = 99;
  const char* p = tokenizer_decode(b_.view, 1, 403, &len);
  EXPECT_EQ(std::string(p, len), "Once");
  p = tokenizer_decode(b_.view, 0, 403, &len);
  EXPECT_EQ(std::string(p, len), " Once");
  p = tokenizer_decode(b_.view, 378, 403, &len);
  EXPECT_EQ(std::string(p, len), " Once");
  // The bare space token after BOS decodes to nothing.
  p = tokenizer_decode(b_.view, 1, 410, &len);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(len, 0u);
  // <0x0A> (id 3 + 10) is a newline byte, with or without BOS in front.
  ASSERT_EQ(ref_.tokens[13], "<0x0A>");
  for (int32_t prev : {1, 0, 400}) {
    p = tokenizer_decode(b_.view, prev, 13, &len);
    EXPECT_EQ(std::string(p, len), "\n");
  }
  p = tokenizer_decode(b_.view, 0, 3 + 0xF0, &len);
  EXPECT_EQ(std::string(p, len), "\xF0");
  p = tokenizer_decode(b_.view, 0, 3, &len);
  EXPECT_EQ(std::string(p, len), std::string(1, '\0'));
  EXPECT_FALSE(tokenizer_piece_is_printable(p, len));
  // Special tokens are printed verbatim, as llama2.c does.
  p = tokenizer_decode(b_.view, 0, 2, &len);
  EXPECT_EQ(std::string(p, len), "\n</s>\n");
  for (int32_t bad : {-1, 512, 1 << 30}) {
    len = 5;
    EXPECT_EQ(tokenizer_decode(b_.view, 0, bad, &len), nullptr);
    EXPECT_EQ(len, 0u);
  }
  EXPECT_EQ(tokenizer_decode(b_.view, 0, 5, nullptr), nullptr);
}

TEST(TokenizerDecode, OnlyExactBytePiecesAreBytes) {
  auto v = base_vocab();
  v.push_back({0.f, "<0x41"});    // 259: no closing bracket
  v.push_back({0.f, "<0xG1>"});   // 260: not hex
  v.push_back({0.f, " <0x41>"});  // 261: a byte piece once BOS strips the space
  v.push_back({0.f, "<0x4a>"});   // 262: lower-case hex
  Built b = build(make_tok_bin(v, 8), static_cast<uint32_t>(v.size()));
  ASSERT_EQ(b.status, Status::Ok);
  size_t len = 0;
  const char* p = tokenizer_decode(b.view, 0, 259, &len);
  EXPECT_EQ(std::string(p, len), "<0x41");
  p = tokenizer_decode(b.view, 0, 260, &len);
  EXPECT_EQ(std::string(p, len), "<0xG1>");
  p = tokenizer_decode(b.view, 0, 261, &len);
  EXPECT_EQ(std::string(p, len), " <0x41>");
  p = tokenizer_decode(b.view, 1, 261, &len);
  EXPECT_EQ(std::string(p, len), "A");
  p = tokenizer_decode(b.view, 0, 262, &len);
  EXPECT_EQ(std::string(p, len), "J");
}

TEST(TokenizerPrintable, SafePrintfRule) {
  EXPECT_TRUE(tokenizer_piece_is_printable("A", 1));
  EXPECT_TRUE(tokenizer_piece_is_printable(" ", 1));
  EXPECT_TRUE(tokenizer_piece_is_printable("\n", 1));
  EXPECT_TRUE(tokenizer_piece_is_printable("\t", 1));
  EXPECT_TRUE(tokenizer_piece_is_printable("~", 1));
  EXPECT_FALSE(tokenizer_piece_is_printable("\x01", 1));
  EXPECT_FALSE(tokenizer_piece_is_printable("\x08", 1));
  EXPECT_FALSE(tokenizer_piece_is_printable("\x7F", 1));
  EXPECT_FALSE(tokenizer_piece_is_printable("\xC3", 1));
  // Multi-byte pieces are printed whatever they contain.
  EXPECT_TRUE(tokenizer_piece_is_printable("\xC3\xA9", 2));
  EXPECT_TRUE(tokenizer_piece_is_printable("\x01\x02", 2));
  EXPECT_FALSE(tokenizer_piece_is_printable("", 0));
  EXPECT_FALSE(tokenizer_piece_is_printable(nullptr, 1));
}

}  // namespace
}  // namespace stk

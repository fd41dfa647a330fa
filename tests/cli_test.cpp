// Tests of the `stk` command line as a user sees it: the built binary is run
// with system(), its exit status, stdout and stderr are checked. The CLI
// style (STYLE.md): help on -h, exit non-zero with a one-line reason on error.
//
// STK_BINARY is the path of the built `stk` (tests/CMakeLists.txt passes
// $<TARGET_FILE:stk>).
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "c_api/stackrt.h"

namespace {

namespace fs = std::filesystem;

std::string data_path(const char* name) { return (fs::path(STK_TEST_DATA_DIR) / name).string(); }

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct Result {
  int exit_code;
  std::string out, err;
};

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> v;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/stk_cli_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    model_ = dir_ + "/stories260K.stk";
    Result r = run({"pack", data_path("stories260K.bin"), model_, "--tokenizer", data_path("tok512.bin")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string bytes = read_all(model_);
    ASSERT_GT(bytes.size(), 4096u);
    truncated_ = dir_ + "/truncated.stk";
    write_all(truncated_, bytes.substr(0, bytes.size() / 2));
    random_ = dir_ + "/random.bin";
    std::mt19937 rng(3);
    std::string noise(4096, '\0');
    for (char& c : noise) c = char(rng());
    write_all(random_, noise);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  static Result run(const std::vector<std::string>& args) {
    static int counter = 0;
    const std::string out = dir_ + "/out" + std::to_string(counter), err = dir_ + "/err" + std::to_string(counter);
    ++counter;
#ifdef STK_BINARY_LAUNCHER
    std::string cmd = std::string(STK_BINARY_LAUNCHER) + " " + quote(STK_BINARY);  // cross builds: qemu
#else
    std::string cmd = quote(STK_BINARY);
#endif
    for (const std::string& a : args) cmd += " " + quote(a);
    cmd += " </dev/null >" + quote(out) + " 2>" + quote(err);
    const int status = std::system(cmd.c_str());
    Result r{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_all(out), read_all(err)};
    std::remove(out.c_str());
    std::remove(err.c_str());
    return r;
  }

  // Non-zero exit, nothing on stdout, and exactly one non-empty line on
  // stderr that contains `words`.
  static void expect_error(const std::vector<std::string>& args, const std::string& words) {
    std::string shown;
    for (const std::string& a : args) shown += " " + a;
    SCOPED_TRACE("stk" + shown);
    Result r = run(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_LT(r.exit_code, 128) << "killed by a signal";
    EXPECT_EQ(r.out, "");
    const std::vector<std::string> l = lines(r.err);
    ASSERT_EQ(l.size(), 1u) << "stderr: " << r.err;
    EXPECT_EQ(r.err.back(), '\n');
    EXPECT_NE(l[0].find(words), std::string::npos) << "stderr line '" << l[0] << "' lacks '" << words << "'";
  }

  static std::string dir_, model_, truncated_, random_;
};
std::string Cli::dir_, Cli::model_, Cli::truncated_, Cli::random_;

// ---- Help -------------------------------------------------------------------------

TEST_F(Cli, HelpForEachSubcommand) {
  for (const char* cmd : {"pack", "run", "ppl", "info"}) {
    for (const char* flag : {"-h", "--help"}) {
      SCOPED_TRACE(std::string(cmd) + " " + flag);
      Result r = run({cmd, flag});
      EXPECT_EQ(r.exit_code, 0);
      EXPECT_EQ(r.out.rfind(std::string("usage: stk ") + cmd + " ", 0), 0u) << r.out;
      EXPECT_EQ(r.err, "");
    }
  }
  // -h wins even after other (possibly invalid) arguments.
  Result r = run({"run", "--bogus", "-h"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("usage: stk run ", 0), 0u);
  // Flags are listed with their help.
  EXPECT_NE(run({"run", "-h"}).out.find("--temp"), std::string::npos);
  EXPECT_NE(run({"pack", "-h"}).out.find("--tokenizer"), std::string::npos);
  EXPECT_NE(run({"ppl", "-h"}).out.find("--json"), std::string::npos);
}

TEST_F(Cli, OverviewAndVersion) {
  Result r = run({"-h"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"pack", "run", "ppl", "info"}) {
    EXPECT_NE(r.out.find(std::string("  ") + cmd + " "), std::string::npos) << cmd << " missing from\n" << r.out;
  }
  r = run({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, std::string("stk ") + STK_VERSION_STRING + "\n");
  r = run({});
  EXPECT_NE(r.exit_code, 0);  // no command: the overview, but a failing status
}

// ---- Errors: one line on stderr, non-zero exit ----------------------------------

TEST_F(Cli, UnknownCommandAndFlags) {
  expect_error({"bogus"}, "unknown command 'bogus'");
  expect_error({"info", model_, "--bogus"}, "unknown option --bogus");
  expect_error({"run", model_, "--temp=1", "--bogus=3"}, "unknown option --bogus");
  expect_error({"info", "--json", model_}, "unknown option --json");
  expect_error({"ppl", model_, "--json=1", "--text", "x"}, "--json takes no value");
}

TEST_F(Cli, MissingValue) {
  expect_error({"run", model_, "--temp"}, "--temp needs a value");
  expect_error({"ppl", model_, "--text"}, "--text needs a value");
  expect_error({"pack", "a", "b", "--tokenizer"}, "--tokenizer needs a value");
}

TEST_F(Cli, BadNumbers) {
  expect_error({"run", model_, "--temp", "abc"}, "--temp expects a number");
  expect_error({"run", model_, "--temp", "1.5x"}, "--temp expects a number");
  expect_error({"run", model_, "--temp", "nan"}, "--temp");
  expect_error({"run", model_, "--temp", "-1"}, "--temp must be in");
  expect_error({"run", model_, "--topp", "2"}, "--topp must be in");
  expect_error({"run", model_, "-n", "12x"}, "-n expects an integer");
  expect_error({"run", model_, "-n", "99999999999999999999"}, "-n expects an integer");
  expect_error({"run", model_, "--seed", "-5"}, "--seed must be in");
  expect_error({"run", model_, "--threads", "0"}, "--threads must be in");
  expect_error({"ppl", model_, "--text", data_path("tinystories_valid_dev.txt"), "--threads", "17"},
               "--threads must be in");
}

TEST_F(Cli, WrongPositionalCount) {
  expect_error({"info"}, "expected one MODEL");
  expect_error({"info", model_, model_}, "expected one MODEL");
  expect_error({"run"}, "expected one MODEL");
  expect_error({"run", model_, "extra"}, "expected one MODEL");
  expect_error({"ppl", "--text", "x"}, "expected one MODEL");
  expect_error({"pack", data_path("stories260K.bin"), "--tokenizer", data_path("tok512.bin")}, "expected IN and OUT");
  expect_error({"pack", "a", "b", "c", "--tokenizer", "t"}, "expected IN and OUT");
}

TEST_F(Cli, PackWithoutTokenizer) {
  const std::string out = dir_ + "/never.stk";
  expect_error({"pack", data_path("stories260K.bin"), out}, "--tokenizer");
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Cli, PackErrors) {
  const std::string out = dir_ + "/never.stk";
  expect_error({"pack", dir_ + "/missing.bin", out, "--tokenizer", data_path("tok512.bin")}, "missing.bin");
  expect_error({"pack", random_, out, "--tokenizer", data_path("tok512.bin")}, "random.bin");
  expect_error({"pack", data_path("stories260K.bin"), out, "--tokenizer", random_}, "random.bin");
  expect_error({"pack", data_path("stories260K.bin"), out, "--tokenizer", data_path("tok512.bin"), "--format", "q9"},
               "q9");
  // Distillation needs calibration text, quantized or pruned.
  expect_error({"pack", data_path("stories260K.bin"), out, "--tokenizer", data_path("tok512.bin"), "--format", "q4k",
                "--distill", "4"},
               "--distill needs --calib");
  expect_error({"pack", data_path("stories260K.bin"), out, "--tokenizer", data_path("tok512.bin"), "--sparsity", "2:4",
                "--distill", "4"},
               "--distill needs --calib");
  // Sampled stories are distillation text: without --distill they would do nothing.
  for (const std::vector<std::string> format : {std::vector<std::string>{"--format", "q4k"},
                                                {"--format", "bitstack"}, {"--sparsity", "2:4"}}) {
    std::vector<std::string> args = {"pack", data_path("stories260K.bin"), out, "--tokenizer", data_path("tok512.bin"),
                                     "--calib", data_path("tinystories_valid_dev.txt"), "--distill-samples", "8"};
    args.insert(args.end(), format.begin(), format.end());
    expect_error(args, "--distill-samples needs --distill");
  }
  // The paper's load order scores calibration text; an unknown order.
  expect_error({"pack", data_path("stories260K.bin"), out, "--tokenizer", data_path("tok512.bin"), "--format",
                "bitstack", "--order", "nll"},
               "--order nll needs --calib");
  expect_error({"pack", data_path("stories260K.bin"), out, "--tokenizer", data_path("tok512.bin"), "--format",
                "bitstack", "--order", "best"},
               "--order must be");
  // A BitStack design depth beyond the ladder's 6 levels.
  expect_error({"pack", data_path("stories260K.bin"), out, "--tokenizer", data_path("tok512.bin"), "--format",
                "bitstack", "--depth", "7"},
               "--depth must be in");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST_F(Cli, MissingAndMalformedModelFiles) {
  const std::string missing = dir_ + "/no_such_model.stk";
  for (const char* cmd : {"info", "run"}) {
    expect_error({cmd, missing}, "no_such_model.stk");
    expect_error({cmd, random_}, "magic");
    expect_error({cmd, truncated_}, "truncated");
    expect_error({cmd, dir_}, "not a regular file");
  }
  expect_error({"ppl", missing, "--text", data_path("tinystories_valid_dev.txt")}, "no_such_model.stk");
  expect_error({"ppl", model_, "--text", dir_ + "/no_such_text.txt"}, "no_such_text.txt");
  expect_error({"ppl", model_}, "--text");
  expect_error({"run", model_, "--tokenizer", dir_ + "/no_such_tok.bin"}, "no_such_tok.bin");
  const std::string empty = dir_ + "/empty.stk";
  write_all(empty, "");
  expect_error({"info", empty}, "empty");
}

// ---- info ---------------------------------------------------------------------------

TEST_F(Cli, InfoListsTensorsAndHyperParameters) {
  Result r = run({"info", model_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // stories260K (tests/data/README.md): dim 64, hidden 172, 5 layers, 8 heads,
  // 4 kv heads, vocab 512, seq_len 512.
  const std::map<std::string, int> expect = {{"dim", 64},      {"hidden", 172}, {"layers", 5},   {"heads", 8},
                                             {"kv_heads", 4}, {"vocab", 512},  {"seq_len", 512}};
  for (const auto& [key, value] : expect) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("(^|\\s)" + key + " (\\d+)"))) << key << " in\n" << r.out;
    EXPECT_EQ(std::stoi(m[2]), value) << key;
  }
  // Tensor rows: name, format, RxC, bytes. The embedding + 5 x 9 per layer +
  // the final norm = 47 (the classifier is shared).
  const std::regex row(R"(^\s+(\S+)\s+([a-z0-9]+)\s+(\d+)x(\d+)\s+(\d+)\s*$)");
  std::map<std::string, std::vector<uint64_t>> tensors;
  uint64_t sum = 0;
  for (const std::string& l : lines(r.out)) {
    std::smatch m;
    if (!std::regex_match(l, m, row)) continue;
    EXPECT_EQ(tensors.count(m[1]), 0u) << "duplicate " << m[1];
    tensors[m[1]] = {std::stoull(m[3]), std::stoull(m[4]), std::stoull(m[5])};
    sum += std::stoull(m[5]);
    EXPECT_EQ(m[2].str(), m[3] == "1" ? "f32" : "q8") << l;  // norms stay f32, matrices are q8 by default
  }
  EXPECT_EQ(tensors.size(), 47u) << r.out;
  ASSERT_EQ(tensors.count("tok_embeddings"), 1u);
  EXPECT_EQ(tensors["tok_embeddings"][0], 512u);
  EXPECT_EQ(tensors["tok_embeddings"][1], 64u);
  EXPECT_EQ(tensors["norm"], (std::vector<uint64_t>{1, 64, 256}));
  // layers.4.ffn.w2 is 64 x 172 in q8: 11008 int8 -> scales at 11008 (a
  // multiple of 64), 64 rows x 6 groups x 2 bytes = 768: 11776 bytes.
  EXPECT_EQ(tensors["layers.4.ffn.w2"], (std::vector<uint64_t>{64, 172, 11776}));
  EXPECT_EQ(tensors["layers.0.attn.wk"], (std::vector<uint64_t>{32, 64, 2048 + 32 * 2 * 2}));
  EXPECT_EQ(tensors.count("output"), 0u);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("weight bytes (\\d+)")));
  EXPECT_EQ(std::stoull(m[1]), sum);
}

// ---- ppl --json ---------------------------------------------------------------------

// A minimal JSON reader: enough to check that a line is one well-formed
// object and to read its top-level numbers.
class Json {
 public:
  explicit Json(const std::string& s) : s_(s) {}
  bool object(std::map<std::string, double>* numbers) {
    ws();
    if (!value(numbers, true)) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  void ws() {
    while (i_ < s_.size() && std::isspace(uint8_t(s_[i_]))) ++i_;
  }
  bool lit(const char* w) {
    const std::string t(w);
    if (s_.compare(i_, t.size(), t) != 0) return false;
    i_ += t.size();
    return true;
  }
  bool string(std::string* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    for (++i_; i_ < s_.size(); ++i_) {
      if (s_[i_] == '"') {
        ++i_;
        return true;
      }
      if (s_[i_] == '\\') ++i_;
      if (uint8_t(s_[i_]) < 0x20) return false;
      out->push_back(s_[i_]);
    }
    return false;
  }
  bool number(double* v) {
    static const std::regex num(R"(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?)");
    std::smatch m;
    std::string rest = s_.substr(i_);
    if (!std::regex_search(rest, m, num, std::regex_constants::match_continuous)) return false;
    *v = std::stod(m[0]);
    i_ += m[0].length();
    return true;
  }
  bool value(std::map<std::string, double>* top, bool must_be_object) {
    ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (must_be_object && c != '{') return false;
    if (c == '{') {
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      for (;;) {
        ws();
        std::string key;
        if (!string(&key)) return false;
        ws();
        if (i_ >= s_.size() || s_[i_++] != ':') return false;
        ws();
        double v;
        const size_t at = i_;
        if (number(&v)) {
          if (top != nullptr) {
            if (top->count(key)) return false;  // duplicate key
            (*top)[key] = v;
          }
        } else {
          i_ = at;
          if (!value(nullptr, false)) return false;
        }
        ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        return i_ < s_.size() && s_[i_++] == '}';
      }
    }
    if (c == '[') {
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      for (;;) {
        if (!value(nullptr, false)) return false;
        ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        return i_ < s_.size() && s_[i_++] == ']';
      }
    }
    if (c == '"') {
      std::string ignored;
      return string(&ignored);
    }
    double v;
    return lit("true") || lit("false") || lit("null") || number(&v);
  }
  const std::string& s_;
  size_t i_ = 0;
};

TEST(JsonReader, AcceptsObjectsAndRejectsGarbage) {
  std::map<std::string, double> n;
  EXPECT_TRUE(Json(R"({"a": 1.5, "b": -2e3, "c": "x", "d": [1, {"e": null}], "f": true})").object(&n));
  EXPECT_EQ(n["a"], 1.5);
  EXPECT_EQ(n["b"], -2000.0);
  EXPECT_EQ(n.count("c"), 0u);
  for (const char* bad : {"", "{", "{\"a\": 1,}", "{\"a\" 1}", "[1]", "{\"a\": 01}", "{\"a\": nan}",
                          "{\"a\": 1} x", "{\"a\": 1, \"a\": 2}"}) {
    std::map<std::string, double> m;
    EXPECT_FALSE(Json(bad).object(&m)) << bad;
  }
}

TEST_F(Cli, PplJsonLastLine) {
  const std::vector<std::string> stories = {"Once upon a time, there was a little cat. The cat liked to play.",
                                            "Tom had a red ball. He gave it to his friend.\n"};
  // Stories are split at "\n\n" only: the file's final newline belongs to the last story.
  const std::string text_path = dir_ + "/small.txt";
  write_all(text_path, stories[0] + "\n\n" + stories[1]);
  Result r = run({"ppl", model_, "--text", text_path, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> out = lines(r.out);
  ASSERT_FALSE(out.empty());
  std::map<std::string, double> j;
  ASSERT_TRUE(Json(out.back()).object(&j)) << out.back();
  for (const char* key : {"ppl", "predictions", "mean_nll", "weight_bytes", "arena_bytes"}) {
    ASSERT_EQ(j.count(key), 1u) << key << " missing from " << out.back();
  }
  EXPECT_NEAR(j["ppl"], std::exp(j["mean_nll"]), 1e-5 * j["ppl"] + 1e-6);  // both printed with 6 decimals
  EXPECT_GT(j["ppl"], 1.0);
  EXPECT_LT(j["ppl"], 512.0);  // better than uniform over the vocabulary: the model knows TinyStories
  EXPECT_GT(j["arena_bytes"], 0.0);

  // Predictions: one per token after BOS of each story (the story-ppl
  // protocol; both stories fit one window). Counted with the C API's tokenizer.
  stk_model* model = nullptr;
  stk_message m{};
  ASSERT_EQ(stk_model_open_file(model_.c_str(), nullptr, &model, &m), STK_OK) << m.text;
  uint64_t predictions = 0;
  for (const std::string& s : stories) {
    std::vector<int32_t> tokens(s.size() + 3);
    size_t n = 0;
    ASSERT_EQ(stk_tokenize(model, s.data(), s.size(), 1, tokens.data(), tokens.size(), &n, &m), STK_OK) << m.text;
    predictions += n - 1;
  }
  stk_model_info info = STK_MODEL_INFO_INIT;
  ASSERT_EQ(stk_model_get_info(model, &info, &m), STK_OK);
  stk_model_close(model);
  EXPECT_EQ(j["predictions"], double(predictions));
  EXPECT_EQ(j["weight_bytes"], double(info.weight_bytes));

  // The same numbers as the human-readable line.
  std::smatch hm;
  ASSERT_TRUE(std::regex_search(r.out, hm, std::regex(R"(predictions (\d+)\s+mean_nll ([0-9.]+)\s+ppl ([0-9.]+))")));
  EXPECT_EQ(std::stod(hm[1]), j["predictions"]);
  EXPECT_EQ(std::stod(hm[3]), j["ppl"]);
}

// --scalar-kernels scores with the portable kernels: the same predictions,
// and a ppl that differs from the SIMD kernels' only by their rounding.
TEST_F(Cli, PplWithScalarKernels) {
  const std::string text_path = dir_ + "/two.txt";
  write_all(text_path, "Lily saw a big dog in the park. She was happy.\n\nBen had a toy car. He liked it a lot.\n");
  std::map<std::string, double> simd, scalar;
  Result a = run({"ppl", model_, "--text", text_path, "--json"});
  Result b = run({"ppl", model_, "--text", text_path, "--json", "--scalar-kernels"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ASSERT_TRUE(Json(lines(a.out).back()).object(&simd));
  ASSERT_TRUE(Json(lines(b.out).back()).object(&scalar));
  EXPECT_EQ(simd["predictions"], scalar["predictions"]);
  EXPECT_NEAR(simd["ppl"], scalar["ppl"], 0.01 * simd["ppl"]);
}

TEST_F(Cli, PplWithoutJsonPrintsNoJson) {
  const std::string text_path = dir_ + "/one.txt";
  write_all(text_path, "The sun was hot.\n");
  Result r = run({"ppl", model_, "--text", text_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find('{'), std::string::npos);
}

TEST_F(Cli, RunGeneratesDeterministicallyWithASeed) {
  Result a = run({"run", model_, "-n", "20", "--seed", "7", "--prompt", "Once upon"});
  Result b = run({"run", model_, "-n", "20", "--seed", "7", "--prompt", "Once upon", "--threads", "2"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.rfind("Once upon", 0), 0u) << a.out;
  EXPECT_GT(a.out.size(), std::string("Once upon").size() + 5);
}

// stk bench --formats bitstack: the BitStack row holds the Q4 model's weight
// bytes (a stories15M-shaped model shares its classifier with the embedding,
// so every weight byte is read per token, Q4's included): at most the
// budget, and short of it by less than one block of the largest matrix.
TEST_F(Cli, BenchBitStackRowFillsTheQ4Budget) {
  Result r = run({"bench", "--shapes", "stories15M", "--formats", "q4,bitstack", "--threads", "1", "--prompt", "2",
                  "--decode", "2", "--bw-mib", "64", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, double> bytes, tps;
  const std::regex row(R"re("format": "([a-z0-9]+)".*?"weight_bytes_per_token": (\d+), "decode_tok_s": ([0-9.]+))re");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), row), end; it != end; ++it) {
    bytes[(*it)[1]] = std::stod((*it)[2]);
    tps[(*it)[1]] = std::stod((*it)[3]);
  }
  ASSERT_EQ(bytes.count("q4"), 1u) << r.out;
  ASSERT_EQ(bytes.count("bitstack"), 1u) << r.out;
  // The largest stories15M matrix is 768 x 288: one block is its sign plane
  // (768 * 36 bytes) plus fp16 factors of a few ranks, under 40 KB.
  EXPECT_LE(bytes["bitstack"], bytes["q4"]);
  EXPECT_GT(bytes["bitstack"], bytes["q4"] - 40e3);
  EXPECT_GT(tps["bitstack"], 0.0);
  EXPECT_GT(tps["q4"], 0.0);
  // The dense-rebuild comparison is timed for the BitStack row only.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"re("format": "bitstack".*?"dense_rebuild_tok_s": ([0-9.]+))re")));
  EXPECT_GT(std::stod(m[1]), 0.0);
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"re("format": "q4".*?"dense_rebuild_tok_s": ([0-9.]+))re")));
  EXPECT_EQ(std::stod(m[1]), 0.0);
}

// A sparse row is compared with the dense row of its value format, round by
// round: one line per pair, whose best-rounds ratio is that of the two rows'
// decode columns, and none for a dense row without a sparse twin.
TEST_F(Cli, BenchPrintsSparseAgainstDenseRatios) {
  Result r = run({"bench", "--shapes", "stories15M", "--formats", "q8,2:4-q8,q4", "--threads", "1", "--prompt", "2",
                  "--decode", "2", "--bw-mib", "64", "--repeat", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, double> tps;
  const std::regex row(R"re(stories15M +([a-z0-9:-]+) +1 +[0-9.]+ +\d+ +([0-9.]+) )re");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), row), end; it != end; ++it) tps[(*it)[1]] = std::stod((*it)[2]);
  ASSERT_EQ(tps.count("q8"), 1u) << r.out;
  ASSERT_EQ(tps.count("2:4-q8"), 1u) << r.out;
  const std::regex ratio(R"re(decode 2:4-q8 / q8, 1 thread: ([0-9.]+)x from the best rounds; per round ([0-9.]+)-([0-9.]+)x, median ([0-9.]+)x \(2 rounds\))re");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, ratio)) << r.out;
  EXPECT_NEAR(std::stod(m[1]), tps["2:4-q8"] / tps["q8"], 0.01);
  EXPECT_LE(std::stod(m[2]), std::stod(m[4]));
  EXPECT_LE(std::stod(m[4]), std::stod(m[3]));
  EXPECT_EQ(r.out.find("/ q4"), std::string::npos) << r.out;
}

// The bitstack-rowmajor row times the same blocks with the sign planes left
// row-major in RAM: same bytes, its own speed, no dense-rebuild timing.
TEST_F(Cli, BenchBitStackRowMajorRowTimesTheSameBlocks) {
  Result r = run({"bench", "--shapes", "stories15M", "--formats", "bitstack,bitstack-rowmajor", "--threads", "1",
                  "--prompt", "2", "--decode", "2", "--bw-mib", "64", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, double> bytes, tps, rebuild;
  const std::regex row(
      R"re("format": "([a-z-]+)".*?"weight_bytes_per_token": (\d+), "decode_tok_s": ([0-9.]+).*?"dense_rebuild_tok_s": ([0-9.]+))re");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), row), end; it != end; ++it) {
    bytes[(*it)[1]] = std::stod((*it)[2]);
    tps[(*it)[1]] = std::stod((*it)[3]);
    rebuild[(*it)[1]] = std::stod((*it)[4]);
  }
  ASSERT_EQ(bytes.count("bitstack"), 1u) << r.out;
  ASSERT_EQ(bytes.count("bitstack-rowmajor"), 1u) << r.out;
  EXPECT_EQ(bytes["bitstack-rowmajor"], bytes["bitstack"]);
  EXPECT_GT(tps["bitstack-rowmajor"], 0.0);
  EXPECT_GT(rebuild["bitstack"], 0.0);
  EXPECT_EQ(rebuild["bitstack-rowmajor"], 0.0);
}

// stk bench --isa LIST: one row per kernel set, labelled format@set, and the
// JSON names the set each row ran; an unknown set is a usage error.
TEST_F(Cli, BenchIsaListTimesEachKernelSet) {
  Result r = run({"bench", "--shapes", "stories15M", "--formats", "q4", "--threads", "1", "--prompt", "2", "--decode",
                  "2", "--bw-mib", "64", "--isa", "scalar,best", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::pair<std::string, std::string>> rows;  // (format label, kernels)
  const std::regex row(R"re("format": "([^"]+)", "kernels": "([a-z0-9]+)")re");
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), row), end; it != end; ++it) rows.emplace_back((*it)[1], (*it)[2]);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0], std::make_pair(std::string("q4@scalar"), std::string("scalar")));
  EXPECT_EQ(rows[1].first, "q4@" + rows[1].second);
  EXPECT_NE(r.out.find("q4@scalar"), std::string::npos);  // the table labels rows the same way

  Result bad = run({"bench", "--shapes", "stories15M", "--formats", "q4", "--isa", "avx9"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--isa"), std::string::npos) << bad.err;
}

// stk bench reports each CPU's speed on one loop pinned to it, for the CPUs
// its affinity mask allows: all of them by default, and only the one CPU
// when the mask holds one, which is then the fastest (1.00).
TEST_F(Cli, BenchReportsTheSpeedOfEachAllowedCpu) {
  cpu_set_t all;
  CPU_ZERO(&all);
  ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE && first < 0; ++c)
    if (CPU_ISSET(c, &all)) first = c;
  const std::vector<std::string> args = {"bench", "--shapes", "stories15M", "--formats", "q4", "--threads", "1",
                                         "--prompt", "2", "--decode", "2", "--bw-mib", "64", "--json"};
  const std::regex entry(R"re(cpu(\d+) ([0-9.]+)-([0-9.]+))re");
  const auto cpus_in = [&](const std::string& err) {
    std::vector<std::string> found;
    const size_t at = err.find("CPU speed");
    if (at == std::string::npos) return found;
    const std::string line = err.substr(at, err.find('\n', at) - at);
    for (std::sregex_iterator it(line.begin(), line.end(), entry), end; it != end; ++it) {
      EXPECT_LE(std::stod((*it)[2]), std::stod((*it)[3])) << line;  // lowest <= highest
      EXPECT_GT(std::stod((*it)[2]), 0.0) << line;
      EXPECT_LE(std::stod((*it)[3]), 1.0) << line;
      found.push_back((*it)[1]);
    }
    return found;
  };
  Result r = run(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(cpus_in(r.err).size(), size_t(CPU_COUNT(&all))) << r.err;

  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  Result pinned = run(args);
  ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_EQ(cpus_in(pinned.err), std::vector<std::string>{std::to_string(first)}) << pinned.err;
  EXPECT_NE(pinned.err.find("cpu" + std::to_string(first) + " 1.00-1.00"), std::string::npos) << pinned.err;
  EXPECT_NE(pinned.out.find("\"slowest_cpu_speed\": 1.000"), std::string::npos) << pinned.out;
}

}  // namespace

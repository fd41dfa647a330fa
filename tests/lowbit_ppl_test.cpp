// End-to-end perplexity of stories260K packed in each low-bit format, round-
// to-nearest and calibrated (GPTQ on the first 64 dev stories), scored on the
// next stories of tinystories_valid_dev.txt. Also measures what the int8
// activations of the low-bit kernels cost, against the float-activation
// reference kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "c_api/stackrt_internal.h"
#include "runtime/kernels/kernels.h"
#include "tests/test_support.h"
#include "tools/calib.h"
#include "tools/llama2c_import.h"
#include "tools/memory_model.h"
#include "tools/model_stats.h"
#include "tools/pack.h"
#include "tools/pack_plan.h"
#include "tools/story_ppl.h"

namespace {

// Calibration on dev stories 0..63, evaluation on 64..263. Emulation sizes
// (tests/test_support.h): calibration on 0..15, evaluation on 64..75, and
// GPTQ for the 4-bit formats only: its clip search costs 1.5-3 s per packed
// model on the host whatever the sample (80-180 s under qemu). The other
// formats are packed round-to-nearest there, so their kernels still run end to
// end; their calibrated figures are the host run's to check.
const size_t kCalibStories = stk::test::sized(64, 16);
const size_t kEvalStories = stk::test::sized(200, 12);

std::string dev_text_path() {
  for (std::string p : {std::string(STK_TEST_DATA_DIR) + "/tinystories_valid_dev.txt",
                        std::string(STK_SHARED_DATA_DIR) + "/tinystories_valid_dev.txt"}) {
    if (std::ifstream(p).good()) return p;
  }
  return "";
}

struct Fixture {
  stk::host::HostModel hm;
  std::vector<uint8_t> tok;
  std::vector<std::string> calib, eval;
};

const Fixture* fixture() {
  static Fixture* f = [] () -> Fixture* {
    const std::string text = dev_text_path();
    if (text.empty()) return nullptr;
    auto* f = new Fixture;
    f->hm = stk::host::import_llama2c(std::string(STK_TEST_DATA_DIR) + "/stories260K.bin");
    f->tok = stk::host::tokenizer_section_from_llama2c(
        stk::host::read_file(std::string(STK_TEST_DATA_DIR) + "/tok512.bin"), f->hm.config.vocab_size, "tok512");
    std::ifstream in(text, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto stories = stk::host::split_stories(all);
    f->calib = stk::host::story_range(stories, 0, kCalibStories);
    f->eval = stk::host::story_range(stories, 64, 64 + kEvalStories);
    return f;
  }();
  return f;
}

// A packed model: its .stk file and its bits per linear weight.
struct Packed {
  std::vector<uint8_t> file;
  double bpw = 0.0;
};

double ppl_of(const Packed& pm, const std::vector<std::string>& stories, bool f32_acts = false) {
  stk::host::MemoryModel mm(pm.file);
  stk::host::MemorySession ms(mm, 1, 64);
  stk::KernelSet custom = stk::kernels_best();
  if (f32_acts) {
    for (stk::WeightFormat f : {stk::WeightFormat::Q4, stk::WeightFormat::Q3, stk::WeightFormat::Q2,
                                stk::WeightFormat::T2}) {
      custom.fn[uint32_t(f)] = stk::matmul_lowbit_f32act_scalar;
      custom.wants_q8_activations[uint32_t(f)] = false;
    }
    stk::session_use_kernels(stk_session_impl(ms.get()), &custom);
  }
  return stk::host::score_stories(mm.get(), ms.get(), stories).ppl();
}

// Calibrated packs are shared by the processes of this binary (the q4, q3
// and q2 ones are scored by two tests): stk::test::cached_pack.
Packed pack(const Fixture& f, const std::string& format, bool calibrated) {
  const auto build = [&] {
    stk::host::PackPlanOptions o;
    o.base = stk::host::parse_format_spec(format);
    if (calibrated) o.calib = f.calib;
    return stk::host::serialize_stk(stk::host::pack_with_plan(f.hm, f.tok, o));
  };
  Packed p{calibrated ? stk::test::cached_pack("stories260K-" + format + "-gptq", build) : build()};
  stk::host::MemoryModel mm(p.file);
  p.bpw = stk::host::model_linear_bpw(mm.get());
  return p;
}

TEST(LowbitPpl, EveryFormatRoundToNearestAndCalibrated) {
  const Fixture* f = fixture();
  if (!f) GTEST_SKIP() << "tinystories_valid_dev.txt not found in tests/data or ../shared/data";
  const double base = ppl_of(pack(*f, "f32", false), f->eval);
  std::map<std::string, double> rel;
  for (const char* fmt : {"q8", "q4", "q3", "q2", "t2"}) {
    for (bool cal : {false, true}) {
      if (std::string(fmt) == "q8" && cal) continue;
      if (stk::test::kEmulationSizes && cal && std::string(fmt) != "q4") continue;
      const Packed pm = pack(*f, fmt, cal);
      const double p = ppl_of(pm, f->eval);
      const std::string key = std::string(fmt) + (cal ? "/gptq" : "/rtn");
      rel[key] = p / base - 1.0;
      std::printf("  %-8s linear_bpw %.3f  ppl %.4f  (%+.1f%% vs f32 %.4f)\n", key.c_str(), pm.bpw, p,
                  100 * rel[key], base);
    }
  }
  EXPECT_LT(rel["q8/rtn"], 0.01);
  EXPECT_LT(rel["q4/rtn"], 0.25);
  EXPECT_LT(rel["q4/gptq"], 0.08);
  if (stk::test::kEmulationSizes) {
    // Only q4 is calibrated here. Round-to-nearest, fewer bits cost more (on
    // the host run of these sizes: +14%, +110%, +19000%).
    EXPECT_LT(rel["q4/gptq"], rel["q4/rtn"]);
    EXPECT_LT(rel["q4/rtn"], rel["q3/rtn"]);
    EXPECT_LT(rel["q3/rtn"], rel["q2/rtn"]);
    EXPECT_TRUE(std::isfinite(rel["q2/rtn"]));
    EXPECT_TRUE(std::isfinite(rel["t2/rtn"]));
    return;
  }
  EXPECT_LT(rel["q3/gptq"], 0.60);
  EXPECT_LT(rel["q2/gptq"], 15.0);
  EXPECT_TRUE(std::isfinite(rel["t2/gptq"]));
  // Calibration must help every low-bit format.
  for (const char* fmt : {"q4", "q3", "q2", "t2"}) {
    EXPECT_LT(rel[std::string(fmt) + "/gptq"], rel[std::string(fmt) + "/rtn"]) << fmt;
  }
}

// Quantized group scales (q4k, q3k, q2k: groups of 16 with 8-bit scale and
// zero codes, docs/format.md §8.3) against fp16 scales on groups of 32: no
// more bits, lower perplexity after GPTQ at every width. Emulation sizes: the
// 3-bit width only (see kCalibStories): on their 12 eval stories the 4-bit
// gap (+3.2 % against +4.8 % held out) is within the sample's noise, and
// which of the two wins flipped between targets with the same code.
TEST(LowbitPpl, QuantizedScalesBeatFp16ScalesAtNoMoreBits) {
  const Fixture* f = fixture();
  if (!f) GTEST_SKIP() << "tinystories_valid_dev.txt not found in tests/data or ../shared/data";
  const double base = ppl_of(pack(*f, "f32", false), f->eval);
  const std::vector<const char*> widths =
      stk::test::kEmulationSizes ? std::vector<const char*>{"3"} : std::vector<const char*>{"4", "3", "2"};
  for (const char* bits : widths) {
    const std::string plain = std::string("q") + bits, k = plain + "k";
    const Packed pk = pack(*f, k, true), pp = pack(*f, plain, true);
    const double rp = ppl_of(pp, f->eval) / base - 1, rk = ppl_of(pk, f->eval) / base - 1;
    std::printf("  %-4s linear_bpw %.3f  %+.1f%%   %-3s linear_bpw %.3f  %+.1f%%\n", k.c_str(), pk.bpw, 100 * rk,
                plain.c_str(), pp.bpw, 100 * rp);
    EXPECT_LE(pk.bpw, pp.bpw) << k;
    EXPECT_LT(rk, rp) << k;
    // Emulation sizes: within 7%. Their 12 stories are harder on the 4-bit
    // formats than longer slices (a host run of these sizes: q4k +5.2% and q4
    // round-to-nearest +13.9%; the same with 32 stories: +3.5% and +12.0%).
    if (k == "q4k") EXPECT_LT(rk, stk::test::kEmulationSizes ? 0.07 : 0.05);  // held-out (all 2617 stories): +3.2 %
    if (k == "q3k") EXPECT_LT(rk, 0.25);  // held-out: +17.4 %
  }
}

TEST(LowbitPpl, Int8ActivationsCostLittle) {
  const Fixture* f = fixture();
  if (!f) GTEST_SKIP() << "tinystories_valid_dev.txt not found in tests/data or ../shared/data";
  const Packed pm = pack(*f, "q4", false);
  std::vector<std::string> few(f->eval.begin(), f->eval.begin() + long(stk::test::sized(100, 8)));
  const double q8act = ppl_of(pm, few, false), f32act = ppl_of(pm, few, true);
  std::printf("  q4 ppl with int8 activations %.4f, float activations %.4f (%+.2f%%)\n", q8act, f32act,
              100 * (q8act / f32act - 1));
  EXPECT_LT(std::fabs(q8act / f32act - 1), 0.01);
}

}  // namespace

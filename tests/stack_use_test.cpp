// How much stack the runtime needs on a thread that evaluates, with every
// kernel set this CPU runs and every weight format, on a model wide enough
// that the kernels fill their per-call tables: the sparse VNNI kernel's
// tables cover an 8192-input stripe of four tokens, so W2 here has 17000
// inputs (three stripes) and the prompt is scored in 4-token tiles.
//
// The thread runs on a stack this test owns, filled with a pattern first;
// the deepest byte that no longer holds the pattern is the peak. A thread
// that only returns gives the baseline (thread descriptor, TLS), which is
// subtracted. The peak must stay within STK_STACK_USE_BYTES, the figure
// c_api/stackrt.h promises callers and the posix port gives its workers.
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "c_api/stackrt_internal.h"
#include "runtime/session.h"
#include "tests/kernel_sets.h"
#include "tests/test_support.h"
#include "tools/bitstack_pack.h"
#include "tools/llama2c_import.h"
#include "tools/pack.h"
#include "tools/pack_plan.h"
#include "tools/prune.h"
#include "tools/stk_writer.h"

namespace stk::test {
namespace {

constexpr size_t kPainted = 4u << 20;  // far more than any use measured
constexpr uint8_t kPaint = 0xA5;

// Bytes of `fn`'s thread's stack that were written, descriptor and TLS included.
size_t stack_touched(const std::function<void()>& fn) {
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, kPainted) != 0) return SIZE_MAX;
  uint8_t* stack = static_cast<uint8_t*>(mem);
  std::memset(stack, kPaint, kPainted);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, kPainted);
  pthread_t th;
  const auto run = [](void* p) -> void* {
    (*static_cast<const std::function<void()>*>(p))();
    return nullptr;
  };
  size_t touched = SIZE_MAX;
  if (pthread_create(&th, &attr, run, const_cast<std::function<void()>*>(&fn)) == 0) {
    pthread_join(th, nullptr);
    size_t low = 0;
    while (low < kPainted && stack[low] == kPaint) ++low;
    touched = kPainted - low;
  }
  pthread_attr_destroy(&attr);
  std::free(mem);
  return touched;
}

// stories260K's first layer with its MLP widened to 17000 (random weights
// at the trained ones' scale): every matrix keeps its shape except W1/W3
// (17000 x 64) and W2 (64 x 17000). One layer: depth does not grow with
// layers, and packing 13 formats is most of this test's time.
const host::HostModel& wide_model() {
  static const host::HostModel m = [] {
    host::HostModel hm = host::import_llama2c(data_path("stories260K.bin"));
    hm.config.n_layers = 1;
    hm.tensors.erase(std::remove_if(hm.tensors.begin(), hm.tensors.end(),
                                    [](const host::HostTensor& t) { return t.layer != kNoLayer && t.layer > 0; }),
                     hm.tensors.end());
    constexpr uint32_t kHidden = 17000;
    std::mt19937 rng(7);
    for (host::HostTensor& t : hm.tensors) {
      const bool up = t.role == TensorRole::W1 || t.role == TensorRole::W3, down = t.role == TensorRole::W2;
      if (!up && !down) continue;
      (up ? t.rows : t.cols) = kHidden;
      std::normal_distribution<float> nd(0.f, 1.f / std::sqrt(float(t.cols)));
      t.data.assign(size_t(t.rows) * t.cols, 0.f);
      for (float& v : t.data) v = nd(rng);
    }
    hm.config.hidden_dim = kHidden;
    return hm;
  }();
  return m;
}

const std::vector<uint8_t>& tokenizer() {
  static const std::vector<uint8_t> t = host::tokenizer_section_from_llama2c(
      host::read_file(data_path("tok512.bin")), wide_model().config.vocab_size, "tok512.bin");
  return t;
}

struct Case {
  std::string name;
  std::vector<uint8_t> file;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  // Under qemu (tests/test_support.h) the formats whose kernels differ most.
  const std::vector<const char*> dense =
      kEmulationSizes ? std::vector<const char*>{"f32", "q8", "q4k"}
                      : std::vector<const char*>{"f32", "q8", "q4", "q3", "q2", "t2", "q4k"};
  const std::vector<const char*> values = kEmulationSizes ? std::vector<const char*>{"q8"} : std::vector<const char*>{"q8", "q4", "f32"};
  for (const char* f : dense) {
    host::PackPlanOptions o;
    o.base = host::parse_format_spec(f);
    c.push_back({f, host::serialize_stk(host::pack_with_plan(wide_model(), tokenizer(), o))});
  }
  for (const char* v : values) {
    for (const char* pat : {"2:4", "4:8"}) {
      host::PackPlanOptions o;
      o.base = host::parse_format_spec(v);
      host::SparsePackOptions sp;
      sp.pattern = host::parse_sparsity(pat);
      c.push_back({std::string(pat) + "-" + v, host::serialize_stk(host::pack_sparse(wide_model(), tokenizer(), o, sp))});
    }
  }
  {  // BitStack, uncalibrated: the kernels see the same shapes whatever the fit
    host::BitStackPackOptions o;
    o.iters = 2;
    o.order = "uniform";
    c.push_back({"bitstack", host::serialize_stk(host::pack_bitstack(wide_model(), tokenizer(), o))});
  }
  return c;
}

TEST(StackUse, EvaluationStaysWithinThePromisedThreadStack) {
  const size_t baseline = stack_touched([] {});
  ASSERT_LT(baseline, kPainted / 4);
  // The paint must show use: a thread that writes 100 KB deep into its stack
  // reads as about that much more than the baseline (whose own call frames
  // the probe's overlap).
  const size_t probe = stack_touched([] {
    volatile uint8_t buf[100000];
    for (size_t i = 0; i < sizeof buf; i += 512) buf[i] = 1;
    buf[0] = 2;
  });
  ASSERT_GE(probe, baseline + 95000);

  size_t worst = 0;
  std::string worst_at;
  for (const Case& c : cases()) {
    const ModelImage img = to_image(c.file);
    for (const KernelSet* ks : runnable_kernel_sets()) {
      Runner r(img, 1, 16);
      session_use_kernels(stk_session_impl(r.session), ks);
      stk_status prefill = STK_ERR_IO, decode = STK_ERR_IO, gen = STK_ERR_IO;  // overwritten by the calls
      const size_t used = stack_touched([&] {
        int32_t toks[9];
        for (int i = 0; i < 9; ++i) toks[i] = 1 + (i * 37) % 500;
        prefill = stk_session_eval(r.session, toks, 9, nullptr, nullptr);  // two 4-token tiles and one
        decode = stk_session_eval(r.session, toks, 1, nullptr, nullptr);
        // Tokenizer and sampler too (top-p sorts).
        stk_session_reset(r.session);
        stk_sampler_config sc = STK_SAMPLER_CONFIG_INIT;
        sc.temperature = 0.8f;
        sc.top_p = 0.9f;
        gen = stk_generate(r.session, "Once upon a time", 24, &sc, nullptr, nullptr, nullptr, nullptr);
      }) - baseline;
      EXPECT_EQ(prefill, STK_OK) << c.name;
      EXPECT_EQ(decode, STK_OK) << c.name;
      EXPECT_EQ(gen, STK_OK) << c.name;
      std::printf("%-8s %-7s %7zu bytes of stack\n", c.name.c_str(), ks->name, used);
      if (used > worst) worst = used, worst_at = c.name + " on " + ks->name;
      EXPECT_LE(used, size_t(STK_STACK_USE_BYTES)) << c.name << " with " << ks->name << " kernels";
    }
  }
  std::printf("deepest: %zu bytes (%s); promised %u\n", worst, worst_at.c_str(), unsigned(STK_STACK_USE_BYTES));
}

}  // namespace
}  // namespace stk::test

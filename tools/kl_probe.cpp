#include "tools/kl_probe.h"

#include <algorithm>
#include <cmath>

#include "tools/distill.h"
#include "tools/handles.h"
#include "tools/memory_model.h"

namespace stk::host {
namespace {

void log_softmax(const float* x, uint32_t n, float* out) {
  double mx = x[0];
  for (uint32_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double s = 0;
  for (uint32_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(s);
  for (uint32_t i = 0; i < n; ++i) out[i] = float(double(x[i]) - lse);
}

// Logits of every position of every story, row after row.
std::vector<float> run_all(const PackedModel& pm, const std::vector<std::vector<int32_t>>& toks, uint32_t threads) {
  MemoryModel mm(serialize_stk(pm));
  MemorySession ms(mm, threads, 64);
  const uint32_t vocab = mm.info().vocab_size;
  size_t total = 0;
  for (const auto& t : toks) total += t.size();
  std::vector<float> out(total * vocab);
  size_t at = 0;
  stk_message m{};
  for (const auto& t : toks) {
    stk_session_reset(ms.get());
    check(stk_session_eval(ms.get(), t.data(), uint32_t(t.size()), out.data() + at * vocab, &m), m);
    at += t.size();
  }
  return out;
}

}  // namespace

KlProbe::KlProbe(const PackedModel& reference, const std::vector<std::string>& stories, uint32_t threads)
    : threads_(threads) {
  tokens_ = tokenize_stories(reference, stories);
  vocab_ = reference.config.vocab_size;
  ref_logp_ = run_all(reference, tokens_, threads_);
  for (size_t p = 0; p * vocab_ < ref_logp_.size(); ++p) {
    log_softmax(ref_logp_.data() + p * vocab_, vocab_, ref_logp_.data() + p * vocab_);
  }
}

double KlProbe::kl(const PackedModel& model) const {
  std::vector<float> logits = run_all(model, tokens_, threads_);
  std::vector<float> lq(vocab_);
  double total = 0;
  const size_t positions = logits.size() / vocab_;
  for (size_t p = 0; p < positions; ++p) {
    log_softmax(logits.data() + p * vocab_, vocab_, lq.data());
    const float* lp = ref_logp_.data() + p * vocab_;
    double k = 0;
    for (uint32_t i = 0; i < vocab_; ++i) k += std::exp(double(lp[i])) * (double(lp[i]) - lq[i]);
    total += k;
  }
  return positions ? total / double(positions) : 0.0;
}

}  // namespace stk::host

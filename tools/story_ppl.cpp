#include "tools/story_ppl.h"

#include <chrono>
#include <cmath>
#include <stdexcept>

#include "tools/handles.h"

namespace stk::host {

std::vector<std::string> split_stories(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    std::string piece = text.substr(start, end - start);
    size_t first = piece.find_first_not_of('\n');
    if (first != std::string::npos) out.push_back(piece.substr(first));
    start = end + 2;
  }
  return out;
}

double PplResult::ppl() const { return std::exp(mean_nll()); }

double token_nll(const float* logits, uint32_t vocab, int32_t target) {
  double mx = logits[0];
  for (uint32_t i = 1; i < vocab; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0.0;
  for (uint32_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  return std::log(sum) + mx - double(logits[target]);
}

PplResult score_stories(stk_model* model, stk_session* session, const std::vector<std::string>& stories,
                        const std::function<void(size_t, size_t)>& progress) {
  stk_model_info info = STK_MODEL_INFO_INIT;
  stk_message m{};
  check(stk_model_get_info(model, &info, &m), m);
  // The session's context bounds a window; find it by filling one.
  PplResult r;
  std::vector<int32_t> tokens;
  std::vector<float> logits;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t si = 0; si < stories.size(); ++si) {
    const std::string& s = stories[si];
    tokens.resize(s.size() + 3);
    size_t n = 0;
    check(stk_tokenize(model, s.data(), s.size(), 1, tokens.data(), tokens.size(), &n, &m), m);
    // Windows of at most `window` tokens; consecutive windows share one token.
    const size_t window = info.seq_len;
    for (size_t start = 0; start + 1 < n; start += window - 1) {
      const size_t len = std::min(window, n - start);
      stk_session_reset(session);
      logits.resize((len - 1) * size_t(info.vocab_size));
      check(stk_session_eval(session, tokens.data() + start, uint32_t(len - 1), logits.data(), &m), m);
      for (size_t i = 0; i + 1 < len; ++i) {
        r.nll_sum += token_nll(logits.data() + i * info.vocab_size, info.vocab_size, tokens[start + i + 1]);
        ++r.predictions;
      }
      if (start + len >= n) break;
    }
    if (progress) progress(si + 1, stories.size());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace stk::host

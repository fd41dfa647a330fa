// The "story ppl" protocol of the shared models README: split text into
// stories at blank lines, encode each with BOS, score every next-token
// prediction, continue long stories in fresh windows that start at the last
// scored token, and average the negative log-likelihood.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "c_api/stackrt.h"

namespace stk::host {

// Pieces between "\n\n" separators, leading newlines stripped, empty pieces dropped.
std::vector<std::string> split_stories(const std::string& text);

struct PplResult {
  uint64_t predictions = 0;
  double nll_sum = 0.0;
  double seconds = 0.0;  // evaluation time
  double mean_nll() const { return predictions ? nll_sum / double(predictions) : 0.0; }
  double ppl() const;
};

// Scores `stories` with a session whose context is the window length and
// whose max_batch bounds one eval call. progress(done, total) is optional.
PplResult score_stories(stk_model* model, stk_session* session, const std::vector<std::string>& stories,
                        const std::function<void(size_t, size_t)>& progress = nullptr);

// -log softmax(logits)[target], computed in double.
double token_nll(const float* logits, uint32_t vocab, int32_t target);

}  // namespace stk::host

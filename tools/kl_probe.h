// End-to-end sensitivity of a packed model: the mean KL divergence of its
// next-token distributions from a reference model's, over a few stories.
// Used by --bpw to price each (tensor, format) choice by what it does to
// the model's output rather than to one layer's output.
#pragma once
#include <string>
#include <vector>

#include "tools/stk_writer.h"

namespace stk::host {

class KlProbe {
 public:
  // Runs `reference` over `stories` (each cut to the model's seq_len) and
  // keeps its log-probabilities.
  KlProbe(const PackedModel& reference, const std::vector<std::string>& stories, uint32_t threads);
  // Mean over all positions of KL(reference || model).
  double kl(const PackedModel& model) const;

 private:
  std::vector<std::vector<int32_t>> tokens_;
  std::vector<float> ref_logp_;  // positions x vocab
  uint32_t vocab_ = 0, threads_ = 1;
};

}  // namespace stk::host

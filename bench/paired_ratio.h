// Speed ratios between two bench rows over the rounds they were timed in.
//
// A shared machine's memory speed drifts over minutes, and each row's best
// round may fall in a different spell, so the ratio of two best rounds can
// pair a fast spell with a slow one. Rows of one round are timed back to
// back, so the ratio within each round compares like with like; their
// spread shows how far to trust one run's figure.
#pragma once
#include <cstddef>
#include <vector>

namespace stk::bench {

struct RatioSpread {
  double lo = 0, median = 0, hi = 0;
  size_t rounds = 0;
};

// num[i] / den[i] for every round i (the shorter length; rounds with a
// non-positive denominator are skipped). The median of an even count is the
// mean of the middle two.
RatioSpread paired_ratios(const std::vector<double>& num, const std::vector<double>& den);

}  // namespace stk::bench

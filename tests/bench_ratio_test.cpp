// bench/paired_ratio.h: the per-round ratios stk bench prints for sparse
// rows against their dense twins.
#include <gtest/gtest.h>

#include "bench/paired_ratio.h"

namespace stk::bench {
namespace {

TEST(PairedRatios, SpreadOfTheRoundByRoundRatios) {
  // Rounds: 2/1, 3/2, 4/2 -> 2, 1.5, 2.
  const RatioSpread s = paired_ratios({2, 3, 4}, {1, 2, 2});
  EXPECT_EQ(s.rounds, 3u);
  EXPECT_DOUBLE_EQ(s.lo, 1.5);
  EXPECT_DOUBLE_EQ(s.median, 2.0);
  EXPECT_DOUBLE_EQ(s.hi, 2.0);
}

TEST(PairedRatios, EvenCountTakesTheMeanOfTheMiddleTwo) {
  const RatioSpread s = paired_ratios({1, 4, 3, 6}, {1, 1, 1, 1});
  EXPECT_EQ(s.rounds, 4u);
  EXPECT_DOUBLE_EQ(s.median, 3.5);
  EXPECT_DOUBLE_EQ(s.lo, 1.0);
  EXPECT_DOUBLE_EQ(s.hi, 6.0);
}

TEST(PairedRatios, PairsOnlyRoundsBothHaveAndSkipsEmptyDenominators) {
  const RatioSpread s = paired_ratios({6, 8, 9}, {2, 0});
  EXPECT_EQ(s.rounds, 1u);
  EXPECT_DOUBLE_EQ(s.median, 3.0);
  EXPECT_EQ(paired_ratios({}, {}).rounds, 0u);
}

}  // namespace
}  // namespace stk::bench

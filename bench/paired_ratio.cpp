#include "bench/paired_ratio.h"

#include <algorithm>

namespace stk::bench {

RatioSpread paired_ratios(const std::vector<double>& num, const std::vector<double>& den) {
  std::vector<double> r;
  for (size_t i = 0; i < num.size() && i < den.size(); ++i) {
    if (den[i] > 0) r.push_back(num[i] / den[i]);
  }
  RatioSpread s;
  if (r.empty()) return s;
  std::sort(r.begin(), r.end());
  const size_t n = r.size();
  s.lo = r.front();
  s.hi = r.back();
  s.median = n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
  s.rounds = n;
  return s;
}

}  // namespace stk::bench

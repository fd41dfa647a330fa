#include "tools/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "tools/linalg.h"

namespace stk::host {
LowbitTensor gptq_quantize(const float* w, uint32_t rows, uint32_t cols, FormatSpec spec, const std::vector<double>& H,
                           const GptqOptions& opt) {
  if (H.size() != size_t(cols) * cols) throw std::invalid_argument("gptq: Hessian shape does not match the weights");
  std::vector<double> Hd = H;
  std::vector<float> W(w, w + size_t(rows) * cols);
  // Columns never activated carry no information: their weights cannot matter.
  double mean_diag = 0;
  for (uint32_t i = 0; i < cols; ++i) {
    if (Hd[size_t(i) * cols + i] <= 0) {
      Hd[size_t(i) * cols + i] = 1.0;
      for (uint32_t r = 0; r < rows; ++r) W[size_t(r) * cols + i] = 0.f;
    }
    mean_diag += Hd[size_t(i) * cols + i];
  }
  mean_diag /= cols;
  std::vector<float> importance(cols);
  for (uint32_t i = 0; i < cols; ++i) importance[i] = float(Hd[size_t(i) * cols + i] / mean_diag);

  // Group parameters are fixed up front from the original weights ("static
  // groups"): with act-order, columns of one group are visited far apart.
  LowbitTensor t = lowbit_quantize_rtn(W.data(), rows, cols, spec, importance.data(), opt.search);

  std::vector<uint32_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0u);
  if (opt.act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](uint32_t a, uint32_t b) {
      return Hd[size_t(a) * cols + a] > Hd[size_t(b) * cols + b];
    });
  }
  std::vector<double> P(size_t(cols) * cols);
  for (uint32_t i = 0; i < cols; ++i)
    for (uint32_t j = 0; j < cols; ++j) P[size_t(i) * cols + j] = Hd[size_t(perm[i]) * cols + perm[j]];
  for (uint32_t i = 0; i < cols; ++i) P[size_t(i) * cols + i] += opt.damp * mean_diag;
  // U upper with H^-1 = U^T U: the transpose of the Cholesky factor of H^-1.
  const std::vector<double> Hinv = inverse_cholesky_upper(P, cols, "gptq");
  auto U = [&](uint32_t i, uint32_t j) { return Hinv[size_t(i) * cols + j]; };

  const uint32_t G = t.groups_per_row();
  const bool ternary = lowbitk_base(spec.format) == WeightFormat::T2;
  std::vector<double> err(rows);
  std::vector<bool> fitted(G, !opt.dynamic_groups);
  for (uint32_t i = 0; i < cols; ++i) {
    const uint32_t c = perm[i];
    const double uii = U(i, i);
    const uint32_t grp = c / spec.group;
    if (!fitted[grp]) {  // refit this group on the current (error-compensated) weights
      fitted[grp] = true;
      const uint32_t c0 = grp * spec.group, n = std::min(cols - c0, spec.group);
      for (uint32_t r = 0; r < rows; ++r) {
        const size_t gi = size_t(r) * G + grp;
        float d, m;
        if (is_lowbitk_format(spec.format)) {
          const LowbitKGrid grid = t.grid();
          lowbit_fit_group(spec.format, &W[size_t(r) * cols + c0], importance.data() + c0, n, opt.search, &d, &m,
                           &grid, &t.ke[gi], &t.kz[gi]);
        } else {
          lowbit_fit_group(spec.format, &W[size_t(r) * cols + c0], importance.data() + c0, n, opt.search, &d, &m);
        }
        t.d[gi] = d;
        t.m[gi] = m;
      }
    }
    for (uint32_t r = 0; r < rows; ++r) {
      const size_t gi = size_t(r) * G + c / spec.group;
      const float d = t.d[gi], m = ternary ? 0.f : t.m[gi];
      const float v = W[size_t(r) * cols + c];
      const uint32_t q = lowbit_quantize_value(spec.format, v, d, m);
      t.codes[size_t(r) * cols + c] = uint8_t(q);
      err[r] = (double(v) - lowbit_decode_value(spec.format, q, d, m)) / uii;
    }
    for (uint32_t j = i + 1; j < cols; ++j) {
      const double uij = U(i, j);
      const uint32_t cj = perm[j];
      for (uint32_t r = 0; r < rows; ++r) W[size_t(r) * cols + cj] -= float(err[r] * uij);
    }
  }
  return t;
}

double layer_output_error(const float* w, const float* q, uint32_t rows, uint32_t cols, const std::vector<double>& H) {
  double total = 0;
  std::vector<double> e(cols);
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t c = 0; c < cols; ++c) e[c] = double(w[size_t(r) * cols + c]) - q[size_t(r) * cols + c];
    for (uint32_t i = 0; i < cols; ++i) {
      if (e[i] == 0) continue;
      double s = 0;
      for (uint32_t j = 0; j < cols; ++j) s += H[size_t(i) * cols + j] * e[j];
      total += e[i] * s;
    }
  }
  return total;
}

}  // namespace stk::host

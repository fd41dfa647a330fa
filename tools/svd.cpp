#include "tools/svd.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace stk::host {
namespace {

// One-sided Jacobi on the columns of an m x n matrix (m >= n), given as n
// columns of length m. On return the columns are orthogonal (A V) and V holds
// the accumulated rotations (n columns of length n).
void hestenes(std::vector<std::vector<double>>& cols, std::vector<std::vector<double>>& vcols, uint32_t m) {
  const uint32_t n = uint32_t(cols.size());
  vcols.assign(n, std::vector<double>(n, 0.0));
  for (uint32_t j = 0; j < n; ++j) vcols[j][j] = 1.0;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0.0;
    for (uint32_t p = 0; p + 1 < n; ++p) {
      for (uint32_t q = p + 1; q < n; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        const double* a = cols[p].data();
        const double* b = cols[q].data();
        for (uint32_t i = 0; i < m; ++i) {
          alpha += a[i] * a[i];
          beta += b[i] * b[i];
          gamma += a[i] * b[i];
        }
        if (gamma == 0.0 || std::fabs(gamma) <= 1e-15 * std::sqrt(alpha * beta)) continue;
        off = std::max(off, std::fabs(gamma) / std::sqrt(alpha * beta));
        const double zeta = (beta - alpha) / (2.0 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1.0 + zeta * zeta));
        const double c = 1.0 / std::sqrt(1.0 + t * t), s = c * t;
        for (uint32_t i = 0; i < m; ++i) {
          const double x = cols[p][i], y = cols[q][i];
          cols[p][i] = c * x - s * y;
          cols[q][i] = s * x + c * y;
        }
        for (uint32_t i = 0; i < n; ++i) {
          const double x = vcols[p][i], y = vcols[q][i];
          vcols[p][i] = c * x - s * y;
          vcols[q][i] = s * x + c * y;
        }
      }
    }
    if (off < 1e-14) break;
  }
}

// Orthonormalises the columns in place (modified Gram-Schmidt, twice).
void orthonormalise(std::vector<std::vector<double>>& q) {
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t j = 0; j < q.size(); ++j) {
      for (size_t p = 0; p < j; ++p) {
        double d = 0;
        for (size_t i = 0; i < q[j].size(); ++i) d += q[p][i] * q[j][i];
        for (size_t i = 0; i < q[j].size(); ++i) q[j][i] -= d * q[p][i];
      }
      double nrm = 0;
      for (double x : q[j]) nrm += x * x;
      nrm = std::sqrt(nrm);
      if (nrm > 0) {
        for (double& x : q[j]) x /= nrm;
      }
    }
  }
}

}  // namespace

Svd svd_jacobi(const double* a, uint32_t m, uint32_t n) {
  const bool tall = m >= n;
  const uint32_t rm = tall ? m : n, rn = tall ? n : m;  // work on a tall matrix
  std::vector<std::vector<double>> cols(rn, std::vector<double>(rm));
  for (uint32_t i = 0; i < m; ++i) {
    for (uint32_t j = 0; j < n; ++j) {
      if (tall) cols[j][i] = a[size_t(i) * n + j];
      else cols[i][j] = a[size_t(i) * n + j];
    }
  }
  std::vector<std::vector<double>> vcols;
  hestenes(cols, vcols, rm);
  std::vector<double> sig(rn);
  for (uint32_t j = 0; j < rn; ++j) {
    double s = 0;
    for (double x : cols[j]) s += x * x;
    sig[j] = std::sqrt(s);
  }
  std::vector<uint32_t> order(rn);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return sig[x] > sig[y]; });
  Svd r;
  r.m = m;
  r.n = n;
  r.k = rn;
  r.u.assign(size_t(rn) * m, 0.0);
  r.v.assign(size_t(rn) * n, 0.0);
  r.s.resize(rn);
  for (uint32_t jj = 0; jj < rn; ++jj) {
    const uint32_t j = order[jj];
    r.s[jj] = sig[j];
    // Left vectors of the tall matrix: normalised columns; right: rotations.
    std::vector<double> left(rm, 0.0);
    if (sig[j] > 0) {
      for (uint32_t i = 0; i < rm; ++i) left[i] = cols[j][i] / sig[j];
    }
    const std::vector<double>& right = vcols[j];
    double* U = r.u.data() + size_t(jj) * m;
    double* V = r.v.data() + size_t(jj) * n;
    for (uint32_t i = 0; i < m; ++i) U[i] = tall ? left[i] : right[i];
    for (uint32_t i = 0; i < n; ++i) V[i] = tall ? right[i] : left[i];
  }
  return r;
}

Svd svd_truncated(const double* a, uint32_t m, uint32_t n, uint32_t k, uint32_t power_iters, uint64_t seed) {
  const uint32_t mn = std::min(m, n);
  if (k == 0 || k > mn) throw std::invalid_argument("svd_truncated: rank out of range");
  const uint32_t l = std::min(mn, k + 8);
  if (l >= mn) {  // small problem: the exact SVD is as cheap
    Svd full = svd_jacobi(a, m, n);
    full.k = k;
    full.u.resize(size_t(k) * m);
    full.v.resize(size_t(k) * n);
    full.s.resize(k);
    return full;
  }
  // Deterministic Gaussian test matrix (xorshift + Box-Muller).
  uint64_t st = seed * 0x9E3779B97F4A7C15ull + 1;
  auto uni = [&]() {
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return (double(st >> 11) + 0.5) / 9007199254740992.0;
  };
  auto A = [&](uint32_t i, uint32_t j) { return a[size_t(i) * n + j]; };
  std::vector<std::vector<double>> q(l, std::vector<double>(m, 0.0)), z(l, std::vector<double>(n, 0.0));
  for (uint32_t c = 0; c < l; ++c) {
    for (uint32_t j = 0; j < n; ++j) z[c][j] = std::sqrt(-2.0 * std::log(uni())) * std::cos(6.283185307179586 * uni());
  }
  auto mul_a = [&]() {  // q = A z
    for (uint32_t c = 0; c < l; ++c) {
      for (uint32_t i = 0; i < m; ++i) {
        double s = 0;
        for (uint32_t j = 0; j < n; ++j) s += A(i, j) * z[c][j];
        q[c][i] = s;
      }
    }
    orthonormalise(q);
  };
  auto mul_at = [&]() {  // z = A^T q
    for (uint32_t c = 0; c < l; ++c) {
      std::fill(z[c].begin(), z[c].end(), 0.0);
      for (uint32_t i = 0; i < m; ++i) {
        const double qi = q[c][i];
        for (uint32_t j = 0; j < n; ++j) z[c][j] += A(i, j) * qi;
      }
    }
  };
  mul_a();
  for (uint32_t it = 0; it < power_iters; ++it) {
    mul_at();
    orthonormalise(z);
    mul_a();
  }
  mul_at();  // z[c] = (Q^T A) row c, so B = Q^T A is l x n with rows z
  std::vector<double> b(size_t(l) * n);
  for (uint32_t c = 0; c < l; ++c) std::copy(z[c].begin(), z[c].end(), b.begin() + size_t(c) * n);
  Svd sb = svd_jacobi(b.data(), l, n);
  Svd r;
  r.m = m;
  r.n = n;
  r.k = k;
  r.s.assign(sb.s.begin(), sb.s.begin() + k);
  r.v.assign(sb.v.begin(), sb.v.begin() + size_t(k) * n);
  r.u.assign(size_t(k) * m, 0.0);
  for (uint32_t j = 0; j < k; ++j) {
    for (uint32_t c = 0; c < l; ++c) {
      const double w = sb.u[size_t(j) * l + c];
      for (uint32_t i = 0; i < m; ++i) r.u[size_t(j) * m + i] += q[c][i] * w;
    }
  }
  return r;
}

}  // namespace stk::host

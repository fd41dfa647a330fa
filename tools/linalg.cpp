#include "tools/linalg.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace stk::host {

bool cholesky_lower(std::vector<double>& A, uint32_t n) {
  for (uint32_t j = 0; j < n; ++j) {
    double s = A[size_t(j) * n + j];
    for (uint32_t k = 0; k < j; ++k) s -= A[size_t(j) * n + k] * A[size_t(j) * n + k];
    if (!(s > 0)) return false;
    const double l = std::sqrt(s);
    A[size_t(j) * n + j] = l;
    for (uint32_t i = j + 1; i < n; ++i) {
      double t = A[size_t(i) * n + j];
      for (uint32_t k = 0; k < j; ++k) t -= A[size_t(i) * n + k] * A[size_t(j) * n + k];
      A[size_t(i) * n + j] = t / l;
    }
    for (uint32_t k = j + 1; k < n; ++k) A[size_t(j) * n + k] = 0.0;
  }
  return true;
}

std::vector<double> spd_inverse(std::vector<double> A, uint32_t n, const char* who) {
  if (!cholesky_lower(A, n)) throw std::runtime_error(std::string(who) + ": Hessian not positive definite");
  // Solve L Y = I, then L^T X = Y, column by column.
  std::vector<double> inv(size_t(n) * n, 0.0), y(n);
  for (uint32_t c = 0; c < n; ++c) {
    for (uint32_t i = 0; i < n; ++i) {
      double s = i == c ? 1.0 : 0.0;
      for (uint32_t k = 0; k < i; ++k) s -= A[size_t(i) * n + k] * y[k];
      y[i] = s / A[size_t(i) * n + i];
    }
    for (uint32_t i = n; i-- > 0;) {
      double s = y[i];
      for (uint32_t k = i + 1; k < n; ++k) s -= A[size_t(k) * n + i] * inv[size_t(k) * n + c];
      inv[size_t(i) * n + c] = s / A[size_t(i) * n + i];
    }
  }
  return inv;
}

std::vector<double> inverse_cholesky_upper(const std::vector<double>& H, uint32_t n, const char* who) {
  std::vector<double> inv = spd_inverse(H, n, who);
  if (!cholesky_lower(inv, n)) throw std::runtime_error(std::string(who) + ": inverse Hessian not positive definite");
  std::vector<double> U(size_t(n) * n, 0.0);  // U = L^T
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t j = i; j < n; ++j) U[size_t(i) * n + j] = inv[size_t(j) * n + i];
  return U;
}

bool spd_solve(std::vector<double> A, uint32_t n, std::vector<double>& b) {
  if (!cholesky_lower(A, n)) return false;
  std::vector<double> y(n);
  for (uint32_t i = 0; i < n; ++i) {
    double s = b[i];
    for (uint32_t k = 0; k < i; ++k) s -= A[size_t(i) * n + k] * y[k];
    y[i] = s / A[size_t(i) * n + i];
  }
  for (uint32_t i = n; i-- > 0;) {
    double s = y[i];
    for (uint32_t k = i + 1; k < n; ++k) s -= A[size_t(k) * n + i] * b[k];
    b[i] = s / A[size_t(i) * n + i];
  }
  return true;
}

}  // namespace stk::host

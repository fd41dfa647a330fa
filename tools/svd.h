// Singular value decompositions for the BitStack packer (host tool).
//
// svd_jacobi: exact thin SVD by one-sided (Hestenes) Jacobi rotations; slow
// (O(min(m,n)^2 max(m,n)) per sweep), the reference for tests.
// svd_truncated: the leading k triplets by randomized subspace iteration
// (Halko, Martinsson, Tropp 2011): Y = A Ω, a few power steps (A A^T) with
// re-orthonormalisation, then the exact SVD of the small Q^T A.
#pragma once
#include <cstdint>
#include <vector>

namespace stk::host {

struct Svd {
  uint32_t m = 0, n = 0, k = 0;
  std::vector<double> u;  // [k][m]: u[j*m + i] is U[i][j]
  std::vector<double> s;  // [k], descending
  std::vector<double> v;  // [k][n]: v[j*n + i] is V[i][j]
};

// a is m x n row-major. Returns k = min(m, n) triplets.
Svd svd_jacobi(const double* a, uint32_t m, uint32_t n);

// The leading k (<= min(m, n)) triplets. Deterministic for a given seed.
Svd svd_truncated(const double* a, uint32_t m, uint32_t n, uint32_t k, uint32_t power_iters = 4,
                  uint64_t seed = 1);

}  // namespace stk::host

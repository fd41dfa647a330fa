// Dense symmetric positive definite linear algebra for the host packer
// (GPTQ, SparseGPT, BitStack fitting): row-major n x n matrices of doubles.
#pragma once
#include <cstdint>
#include <vector>

namespace stk::host {

// In place, A = L L^T with L lower (the upper triangle is zeroed); false when
// A is not positive definite (A is then left partly overwritten).
bool cholesky_lower(std::vector<double>& A, uint32_t n);

// Inverse of a symmetric positive definite A; throws std::runtime_error
// naming `who` when A is not positive definite.
std::vector<double> spd_inverse(std::vector<double> A, uint32_t n, const char* who);

// The upper triangular U with H^-1 = U^T U, row-major (GPTQ's and
// SparseGPT's "Hinv"); throws like spd_inverse.
std::vector<double> inverse_cholesky_upper(const std::vector<double>& H, uint32_t n, const char* who);

// Solves A x = b for a symmetric positive definite A (b is overwritten with
// x); false, leaving b unchanged, when A is not positive definite.
bool spd_solve(std::vector<double> A, uint32_t n, std::vector<double>& b);

}  // namespace stk::host

#include "tools/bitstack_decompose.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "runtime/bitstack_format.h"
#include "runtime/half.h"
#include "tools/linalg.h"
#include "tools/svd.h"

namespace stk::host {

uint32_t bitstack_default_rank(uint32_t rows, uint32_t cols) {
  const uint64_t r = uint64_t(rows) * cols / (128ull * (uint64_t(rows) + cols));
  return uint32_t(std::clamp<uint64_t>(r, 1, 16));
}

namespace {

// One block being fitted: signs (+1/-1 per weight) and factors in double.
struct Fit {
  std::vector<int8_t> s;     // [rows][cols]
  std::vector<double> u, v;  // [rank][rows], [rank][cols]
};

// The x in [lo, hi] minimising f by golden-section search (eight narrowing
// steps), where the lower end lo itself also competes: lo is the greedy
// choice and is kept unless an inner point is strictly better.
template <class F>
double golden_section_min(F&& f, double lo, double hi) {
  const double phi = 0.6180339887498949;
  double a = lo, b = hi, x1 = b - phi * (b - a), x2 = a + phi * (b - a);
  double f1 = f(x1), f2 = f(x2), best_x = lo, best = f(lo);
  for (int it = 0; it < 8; ++it) {
    if (f1 < f2) {
      b = x2, x2 = x1, f2 = f1, x1 = b - phi * (b - a), f1 = f(x1);
    } else {
      a = x1, x1 = x2, f1 = f2, x2 = a + phi * (b - a), f2 = f(x2);
    }
  }
  if (f1 < best) best = f1, best_x = x1;
  if (f2 < best) best = f2, best_x = x2;
  return best_x;
}

// Output-error fitting of one block (BitStackHessian).
class HessianFitter {
 public:
  HessianFitter(const BitStackHessian& o, uint32_t rows, uint32_t cols, uint32_t rank)
      : rows_(rows), cols_(cols), rank_(rank), rounds_(o.rounds), lookahead_(o.lookahead),
        H_(o.h, o.h + size_t(cols) * cols) {
    double mean = 0;
    for (uint32_t j = 0; j < cols; ++j) mean += H_[size_t(j) * cols + j];
    mean = mean > 0 ? mean / cols : 1.0;
    std::vector<double> damped = H_;
    for (uint32_t j = 0; j < cols; ++j) {
      double& d = damped[size_t(j) * cols + j];
      d = d > 0 ? d + o.damp * mean : mean;  // a column never activated still needs a pivot
    }
    perm_.resize(cols);
    for (uint32_t j = 0; j < cols; ++j) perm_[j] = j;
    std::stable_sort(perm_.begin(), perm_.end(),
                     [&](uint32_t a, uint32_t b) { return H_[size_t(a) * cols + a] > H_[size_t(b) * cols + b]; });
    std::vector<double> P(size_t(cols) * cols);
    for (uint32_t i = 0; i < cols; ++i)
      for (uint32_t j = 0; j < cols; ++j) P[size_t(i) * cols + j] = damped[size_t(perm_[i]) * cols + perm_[j]];
    Uinv_ = inverse_cholesky_upper(P, cols, "bitstack");
  }

  // The output error of R minus f's block.
  double block_error(const std::vector<double>& R, const Fit& f) const { return error_after(R, f); }

  // sum_r E_r H E_r^T
  double error(const std::vector<double>& E) const {
    double total = 0;
    for (uint32_t r = 0; r < rows_; ++r) total += quad(&E[size_t(r) * cols_]);
    return total;
  }

  // The block for residual R (steps 1-4 of BitStackHessian); `seed` makes
  // the SVD deterministic, `grid` is the depth of the ladder its signs are
  // chosen on (choose_signs).
  // With `shape`, the magnitude is shape's times one scalar (a
  // kBitStackKindScaledFirst block), and so is the look-ahead's next block.
  Fit fit_block(const std::vector<double>& R, uint64_t seed, uint32_t grid, const Fit* shape = nullptr,
                bool ahead = true) const {
    Fit f = shape ? scaled(R, *shape) : initial(R, seed);
    refine(R, &f, grid, shape != nullptr);
    if (!lookahead_ || !ahead) return f;
    // The scale g in [1, 2] that is best on the two-prefix objective.
    std::vector<double> next(R.size());
    auto objective = [&](double g) {
      subtract_block(R, f, &next, g);
      const double e_now = error(next);
      Fit n = shape ? scaled(next, *shape) : initial(next, seed + 1000);
      refine(next, &n, std::max(grid, 2u) - 1, shape != nullptr);
      return std::log(std::max(e_now, 1e-300)) + std::log(std::max(block_error(next, n), 1e-300));
    };
    const double best_g = golden_section_min(objective, 1.0, 2.0);
    for (double& u : f.u) u *= best_g;
    return f;
  }

  // The first block of a stage of `grid` blocks designed together (step 5 of
  // BitStackHessian): f's magnitude times the g in [1, 2] that leaves the
  // least output error once the stage's other grid - 1 blocks are fitted
  // after it, its signs chosen on the grid-deep ladder of g times f's
  // magnitude (no refit, which would pull g back to the one-block optimum).
  Fit design_stage_start(const std::vector<double>& R, const Fit& f, uint32_t grid, uint64_t seed) const {
    auto with_scale = [&](double g) {
      Fit x = f;
      for (double& u : x.u) u *= g;
      choose_signs(R, &x, grid);
      return x;
    };
    std::vector<double> next(R.size());
    auto stage_error = [&](double g) {
      const Fit x = with_scale(g);
      subtract_block(R, x, &next);
      for (uint32_t d = grid - 1; d >= 1; --d) {
        const Fit n = fit_block(next, seed + 1000, d, nullptr, false);
        subtract_block(next, n, &next);
      }
      return error(next);
    };
    const double best_g = golden_section_min(stage_error, 1.0, 2.0);
    return with_scale(best_g);
  }

  // Signs of R and the rank-K SVD of |R|.
  Fit initial(const std::vector<double>& R, uint64_t seed) const {
    Fit f;
    const size_t nw = R.size();
    std::vector<double> mag(nw);
    f.s.resize(nw);
    for (size_t i = 0; i < nw; ++i) mag[i] = std::fabs(R[i]), f.s[i] = R[i] >= 0 ? 1 : -1;
    const Svd sv = svd_truncated(mag.data(), rows_, cols_, rank_, 4, seed);
    f.u.resize(size_t(rank_) * rows_);
    f.v.resize(size_t(rank_) * cols_);
    for (uint32_t k = 0; k < rank_; ++k) {
      const double rs = std::sqrt(std::max(0.0, sv.s[k]));
      for (uint32_t i = 0; i < rows_; ++i) f.u[size_t(k) * rows_ + i] = rs * sv.u[size_t(k) * rows_ + i];
      for (uint32_t j = 0; j < cols_; ++j) f.v[size_t(k) * cols_ + j] = rs * sv.v[size_t(k) * cols_ + j];
    }
    return f;
  }

  // Signs of R and shape's factors scaled to fit |R| by least squares.
  Fit scaled(const std::vector<double>& R, const Fit& shape) const {
    Fit f = shape;
    double num = 0, den = 0;
    for (size_t i = 0; i < R.size(); ++i) {
      f.s[i] = R[i] >= 0 ? 1 : -1;
      const double m = magnitude(shape, uint32_t(i / cols_), uint32_t(i % cols_));
      num += std::fabs(R[i]) * m, den += m * m;
    }
    const double a = den > 0 ? num / den : 1.0;
    for (double& u : f.u) u *= a;
    return f;
  }

  // Improves f (initialised with signs and factors) for residual R, its signs
  // chosen on a `grid`-deep ladder; with scale_only the factors keep their
  // shape and only their scale is refitted.
  void refine(const std::vector<double>& R, Fit* f, uint32_t grid, bool scale_only = false) const {
    Fit best = *f;
    double best_err = block_error(R, *f);
    for (uint32_t round = 0; round < rounds_; ++round) {
      choose_signs(R, f, grid);
      if (scale_only) {
        refit_scale(R, f);
      } else {
        refit_u(R, f);
        if (uint64_t(rank_) * cols_ <= kMaxJointV) refit_v(R, f);
        refit_u(R, f);
      }
      const double e = block_error(R, *f);
      if (!(e < best_err)) break;
      best_err = e;
      best = *f;
    }
    *f = best;
  }

 private:
  // The V step solves one (rank*cols)^2 system; wider layers keep the SVD's V.
  static constexpr uint64_t kMaxJointV = 1024;

  double quad(const double* e) const {
    double total = 0;
    for (uint32_t i = 0; i < cols_; ++i) {
      if (e[i] == 0) continue;
      const double* h = &H_[size_t(i) * cols_];
      double s = 0;
      for (uint32_t j = 0; j < cols_; ++j) s += h[j] * e[j];
      total += e[i] * s;
    }
    return total;
  }

  // *out = R minus g times f's block (out may be &R).
  void subtract_block(const std::vector<double>& R, const Fit& f, std::vector<double>* out, double g = 1.0) const {
    out->resize(R.size());
    for (size_t i = 0; i < R.size(); ++i) (*out)[i] = R[i] - g * f.s[i] * magnitude(f, uint32_t(i / cols_), uint32_t(i % cols_));
  }

  // The level of {sum_{j<depth} t_j m 2^-j : t_j = ±1} nearest to x, and in
  // *top the sign t_0 of that level's first term.
  static double nearest_ladder_level(double x, double m, uint32_t depth, int8_t* top) {
    double best = HUGE_VAL, level = 0;
    for (uint32_t code = 0; code < (1u << depth); ++code) {
      double l = 0, step = m;
      for (uint32_t j = 0; j < depth; ++j, step *= 0.5) l += (code >> j) & 1 ? step : -step;
      if (std::fabs(x - l) < best) best = std::fabs(x - l), level = l, *top = (code & 1) ? 1 : -1;
    }
    return level;
  }

  double magnitude(const Fit& f, uint32_t r, uint32_t c) const {
    double m = 0;
    for (uint32_t k = 0; k < rank_; ++k) m += f.u[size_t(k) * rows_ + r] * f.v[size_t(k) * cols_ + c];
    return m;
  }

  double error_after(const std::vector<double>& R, const Fit& f) const {
    std::vector<double> e(cols_);
    double total = 0;
    for (uint32_t r = 0; r < rows_; ++r) {
      for (uint32_t c = 0; c < cols_; ++c) e[c] = R[size_t(r) * cols_ + c] - f.s[size_t(r) * cols_ + c] * magnitude(f, r, c);
      total += quad(e.data());
    }
    return total;
  }

  // GPTQ over the columns in perm_ order. With grid = 1 each sign is the
  // one that brings the magnitude m closest to the compensated residual x.
  // With grid = D > 1 the block is the first of D still to come: x is
  // rounded to the nearest of the 2^D levels sum_j ±m 2^-j (j < D, the ladder
  // the next blocks will complete), the sign is that level's top one, and
  // the error fed forward is x minus that level, as if all D blocks were
  // already in place. Either way the error is spread over the columns not
  // yet decided.
  void choose_signs(const std::vector<double>& R, Fit* f, uint32_t grid) const {
    std::vector<double> W = R, err(rows_);
    for (uint32_t i = 0; i < cols_; ++i) {
      const uint32_t c = perm_[i];
      const double uii = Uinv_[size_t(i) * cols_ + i];
      for (uint32_t r = 0; r < rows_; ++r) {
        const double m = magnitude(*f, r, c), x = W[size_t(r) * cols_ + c];
        int8_t sg = x * m >= 0 ? 1 : -1;
        double level = sg * m;
        if (grid > 1) level = nearest_ladder_level(x, m, grid, &sg);
        f->s[size_t(r) * cols_ + c] = sg;
        err[r] = (x - level) / uii;
      }
      for (uint32_t j = i + 1; j < cols_; ++j) {
        const double uij = Uinv_[size_t(i) * cols_ + j];
        const uint32_t cj = perm_[j];
        for (uint32_t r = 0; r < rows_; ++r) W[size_t(r) * cols_ + cj] -= err[r] * uij;
      }
    }
  }

  // The scalar a minimising the error of a * (S ⊙ M): <R, B>_H / <B, B>_H.
  void refit_scale(const std::vector<double>& R, Fit* f) const {
    std::vector<double> B(cols_), HB(cols_);
    double num = 0, den = 0;
    for (uint32_t r = 0; r < rows_; ++r) {
      for (uint32_t c = 0; c < cols_; ++c) B[c] = f->s[size_t(r) * cols_ + c] * magnitude(*f, r, c);
      for (uint32_t i = 0; i < cols_; ++i) {
        const double* h = &H_[size_t(i) * cols_];
        double t = 0;
        for (uint32_t j = 0; j < cols_; ++j) t += h[j] * B[j];
        HB[i] = t;
      }
      for (uint32_t c = 0; c < cols_; ++c) num += R[size_t(r) * cols_ + c] * HB[c], den += B[c] * HB[c];
    }
    if (den > 0) {
      const double a = num / den;
      for (double& u : f->u) u *= a;
    }
  }

  // Per row, U[.][r] minimising (R_r - A u)^T H (R_r - A u), A = diag(S_r) V^T.
  void refit_u(const std::vector<double>& R, Fit* f) const {
    const uint32_t K = rank_;
    std::vector<double> A(size_t(K) * cols_), HA(size_t(K) * cols_), G(size_t(K) * K), b(K);
    for (uint32_t r = 0; r < rows_; ++r) {
      for (uint32_t k = 0; k < K; ++k)
        for (uint32_t c = 0; c < cols_; ++c)
          A[size_t(k) * cols_ + c] = f->s[size_t(r) * cols_ + c] * f->v[size_t(k) * cols_ + c];
      for (uint32_t k = 0; k < K; ++k) {
        for (uint32_t i = 0; i < cols_; ++i) {
          const double* h = &H_[size_t(i) * cols_];
          double s = 0;
          for (uint32_t j = 0; j < cols_; ++j) s += h[j] * A[size_t(k) * cols_ + j];
          HA[size_t(k) * cols_ + i] = s;
        }
      }
      const double* Rr = &R[size_t(r) * cols_];
      for (uint32_t k = 0; k < K; ++k) {
        double s = 0;
        for (uint32_t c = 0; c < cols_; ++c) s += HA[size_t(k) * cols_ + c] * Rr[c];
        b[k] = s;
        for (uint32_t l = 0; l < K; ++l) {
          double g = 0;
          for (uint32_t c = 0; c < cols_; ++c) g += A[size_t(l) * cols_ + c] * HA[size_t(k) * cols_ + c];
          G[size_t(k) * K + l] = g;
        }
      }
      if (!spd_solve(G, K, b)) continue;  // a degenerate row keeps its factors
      for (uint32_t k = 0; k < K; ++k) f->u[size_t(k) * rows_ + r] = b[k];
    }
  }

  // All of V at once: sum_l [H ⊙ sum_r U_kr U_lr s_r s_r^T] V_l = sum_r U_kr S_r ⊙ (H R_r).
  void refit_v(const std::vector<double>& R, Fit* f) const {
    const uint32_t K = rank_, n = K * cols_;
    std::vector<double> A(size_t(n) * n, 0.0), b(n, 0.0), hr(cols_);
    for (uint32_t r = 0; r < rows_; ++r) {
      const int8_t* sr = &f->s[size_t(r) * cols_];
      const double* Rr = &R[size_t(r) * cols_];
      for (uint32_t i = 0; i < cols_; ++i) {
        const double* h = &H_[size_t(i) * cols_];
        double s = 0;
        for (uint32_t j = 0; j < cols_; ++j) s += h[j] * Rr[j];
        hr[i] = s;
      }
      for (uint32_t k = 0; k < K; ++k) {
        const double uk = f->u[size_t(k) * rows_ + r];
        for (uint32_t i = 0; i < cols_; ++i) b[size_t(k) * cols_ + i] += uk * sr[i] * hr[i];
        for (uint32_t l = 0; l < K; ++l) {
          const double ukl = uk * f->u[size_t(l) * rows_ + r];
          for (uint32_t i = 0; i < cols_; ++i) {
            double* row = &A[(size_t(k) * cols_ + i) * n + size_t(l) * cols_];
            const double* h = &H_[size_t(i) * cols_];
            const double si = ukl * sr[i];
            for (uint32_t j = 0; j < cols_; ++j) row[j] += si * sr[j] * h[j];
          }
        }
      }
    }
    double mean = 0;
    for (uint32_t i = 0; i < n; ++i) mean += A[size_t(i) * n + i];
    mean = mean > 0 ? mean / n : 1.0;
    for (uint32_t i = 0; i < n; ++i) A[size_t(i) * n + i] += 1e-9 * mean;  // columns never activated
    if (!spd_solve(std::move(A), n, b)) return;
    for (uint32_t i = 0; i < n; ++i) f->v[i] = b[i];
  }

  uint32_t rows_, cols_, rank_, rounds_;
  bool lookahead_;
  std::vector<double> H_;
  std::vector<uint32_t> perm_;
  std::vector<double> Uinv_;  // upper, H_damped^-1 = U^T U, in perm_ order
};

std::vector<BitStackBlock> bitstack_decompose_hessian(const float* w, uint32_t rows, uint32_t cols, uint32_t iters,
                                                      uint32_t rank, const BitStackHessian& o) {
  const size_t nw = size_t(rows) * cols;
  const uint32_t stride = (cols + 7) / 8;
  HessianFitter fitter(o, rows, cols, rank);
  std::vector<double> R(w, w + nw);
  std::vector<BitStackBlock> out;
  double before = fitter.error(R);
  Fit first;  // block 0 with its stored (fp16) factors
  BitStackLayout own{}, reuse{};
  bitstack_layout_kind(rows, cols, rank, kBitStackKindLowRank, &own);
  bitstack_layout_kind(rows, cols, rank, kBitStackKindScaledFirst, &reuse);
  const uint64_t own_bytes = own.resident_bytes(), reuse_bytes = reuse.resident_bytes();
  for (uint32_t it = 0; it < iters; ++it) {
    // Blocks 0 .. depth-1 form the designed stage: block `it` is fitted on a
    // ladder of the depth - it blocks still to come in it.
    const uint32_t grid = o.depth > it ? o.depth - it : 1;
    // Block 0 without a stage stays greedy: it is every tensor's share of
    // the minimum budget.
    Fit f = fitter.fit_block(R, 1 + it, grid, nullptr, it > 0 && grid == 1);
    if (grid > 1) f = fitter.design_stage_start(R, f, grid, 1 + it);
    bool reuse = false;
    if (it > 0) {  // the scaled copy of block 0, if it removes more error per byte
      const Fit g = fitter.fit_block(R, 1 + it, grid, &first);
      const double per_byte_f = (before - fitter.block_error(R, f)) / double(own_bytes);
      const double per_byte_g = (before - fitter.block_error(R, g)) / double(reuse_bytes);
      if (per_byte_g > per_byte_f) f = g, reuse = true;
    }
    BitStackBlock b;
    b.rank = rank;
    b.signs.assign(size_t(rows) * stride, 0);
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t c = 0; c < cols; ++c)
        if (f.s[size_t(r) * cols + c] > 0) b.signs[size_t(r) * stride + c / 8] |= uint8_t(1u << (c % 8));
    // The magnitude the runtime will use: fp16 factors (each pair balanced to
    // equal norms so neither under- or overflows; the product is unchanged),
    // or block 0's fp16 factors times an f32 scale.
    std::vector<float> uf(size_t(rank) * rows), vf(size_t(rank) * cols);
    if (reuse) {
      // f = a * first with first's factors unchanged: a from any non-zero entry.
      double num = 0, den = 0;
      for (size_t i = 0; i < f.u.size(); ++i) num += f.u[i] * first.u[i], den += first.u[i] * first.u[i];
      b.kind = kBitStackKindScaledFirst;
      b.scale = float(den > 0 ? num / den : 1.0);
      b.u = out[0].u;
      b.v = out[0].v;
      for (size_t i = 0; i < uf.size(); ++i) uf[i] = b.scale * half_to_float(b.u[i]);
      for (size_t i = 0; i < vf.size(); ++i) vf[i] = half_to_float(b.v[i]);
    } else {
      b.u.resize(size_t(rank) * rows);
      b.v.resize(size_t(rank) * cols);
      for (uint32_t k = 0; k < rank; ++k) {
        double nu = 0, nv = 0;
        for (uint32_t i = 0; i < rows; ++i) nu += f.u[size_t(k) * rows + i] * f.u[size_t(k) * rows + i];
        for (uint32_t j = 0; j < cols; ++j) nv += f.v[size_t(k) * cols + j] * f.v[size_t(k) * cols + j];
        const double bal = nu > 0 && nv > 0 ? std::pow(nv / nu, 0.25) : 1.0;
        for (uint32_t i = 0; i < rows; ++i) {
          b.u[size_t(k) * rows + i] = float_to_half(float(f.u[size_t(k) * rows + i] * bal));
          uf[size_t(k) * rows + i] = half_to_float(b.u[size_t(k) * rows + i]);
        }
        for (uint32_t j = 0; j < cols; ++j) {
          b.v[size_t(k) * cols + j] = float_to_half(float(f.v[size_t(k) * cols + j] / bal));
          vf[size_t(k) * cols + j] = half_to_float(b.v[size_t(k) * cols + j]);
        }
      }
    }
    if (it == 0) {  // the shape later blocks may reuse: block 0 as stored
      first = f;
      for (size_t i = 0; i < uf.size(); ++i) first.u[i] = uf[i];
      for (size_t i = 0; i < vf.size(); ++i) first.v[i] = vf[i];
    }
    for (uint32_t r = 0; r < rows; ++r) {
      for (uint32_t c = 0; c < cols; ++c) {
        double m = 0;
        for (uint32_t k = 0; k < rank; ++k) m += double(uf[size_t(k) * rows + r]) * vf[size_t(k) * cols + c];
        R[size_t(r) * cols + c] -= f.s[size_t(r) * cols + c] * m;
      }
    }
    b.residual_before = before;
    b.residual_after = before = fitter.error(R);
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace

std::vector<BitStackBlock> bitstack_decompose(const float* w, uint32_t rows, uint32_t cols, uint32_t iters,
                                              uint32_t rank, const double* col_weight,
                                              const BitStackHessian* hessian) {
  if (rank == 0 || rank > kBitStackMaxRank || rank > std::min(rows, cols)) {
    throw std::invalid_argument("bitstack: rank " + std::to_string(rank) + " out of range");
  }
  if (hessian && (hessian->depth == 0 || hessian->depth > kBitStackMaxDepth)) {
    throw std::invalid_argument("bitstack: depth " + std::to_string(hessian->depth) + " out of range 1.." +
                                std::to_string(kBitStackMaxDepth));
  }
  if (hessian) return bitstack_decompose_hessian(w, rows, cols, iters, rank, *hessian);
  const size_t nw = size_t(rows) * cols;
  const uint32_t stride = (cols + 7) / 8;
  std::vector<double> R(w, w + nw), mag(nw);
  std::vector<BitStackBlock> out;
  for (uint32_t it = 0; it < iters; ++it) {
    BitStackBlock b;
    b.rank = rank;
    b.signs.assign(size_t(rows) * stride, 0);
    double before = 0;
    for (size_t i = 0; i < nw; ++i) {
      before += R[i] * R[i] * (col_weight ? col_weight[i % cols] : 1.0);
      mag[i] = std::fabs(R[i]);
      if (R[i] >= 0) b.signs[(i / cols) * stride + (i % cols) / 8] |= uint8_t(1u << ((i % cols) % 8));
    }
    Svd s = svd_truncated(mag.data(), rows, cols, rank, 4, 1 + it);
    b.u.resize(size_t(rank) * rows);
    b.v.resize(size_t(rank) * cols);
    std::vector<float> uf(size_t(rank) * rows), vf(size_t(rank) * cols);
    for (uint32_t k = 0; k < rank; ++k) {
      // |R| >= 0, so the leading pair can be taken non-negative; fix the sign
      // of each pair so that u's sum is >= 0 (cosmetic, the product is unchanged).
      double su = 0;
      for (uint32_t i = 0; i < rows; ++i) su += s.u[size_t(k) * rows + i];
      const double sg = su < 0 ? -1.0 : 1.0, rs = std::sqrt(std::max(0.0, s.s[k]));
      for (uint32_t i = 0; i < rows; ++i) {
        b.u[size_t(k) * rows + i] = float_to_half(float(sg * rs * s.u[size_t(k) * rows + i]));
        uf[size_t(k) * rows + i] = half_to_float(b.u[size_t(k) * rows + i]);
      }
      for (uint32_t j = 0; j < cols; ++j) {
        b.v[size_t(k) * cols + j] = float_to_half(float(sg * rs * s.v[size_t(k) * cols + j]));
        vf[size_t(k) * cols + j] = half_to_float(b.v[size_t(k) * cols + j]);
      }
    }
    double after = 0;
    for (uint32_t r = 0; r < rows; ++r) {
      for (uint32_t c = 0; c < cols; ++c) {
        double m = 0;
        for (uint32_t k = 0; k < rank; ++k) m += double(uf[size_t(k) * rows + r]) * vf[size_t(k) * cols + c];
        const size_t i = size_t(r) * cols + c;
        const bool pos = (b.signs[size_t(r) * stride + c / 8] >> (c % 8)) & 1u;
        R[i] -= pos ? m : -m;
        after += R[i] * R[i] * (col_weight ? col_weight[c] : 1.0);
      }
    }
    b.residual_before = before;
    b.residual_after = after;
    out.push_back(std::move(b));
  }
  return out;
}

uint64_t bitstack_block_bytes(const BitStackBlock& b, uint32_t rows, uint32_t cols) {
  BitStackLayout lay{};
  if (!bitstack_layout_kind(rows, cols, b.rank, b.kind, &lay)) throw std::invalid_argument("bitstack: block too large");
  return lay.resident_bytes();
}

void bitstack_block_accumulate(const BitStackBlock& b, uint32_t rows, uint32_t cols, float* out) {
  const uint32_t stride = (cols + 7) / 8;
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t c = 0; c < cols; ++c) {
      float m = 0;
      for (uint32_t k = 0; k < b.rank; ++k) {  // as the kernels: (scale * U) * V
        m += (b.scale * half_to_float(b.u[size_t(k) * rows + r])) * half_to_float(b.v[size_t(k) * cols + c]);
      }
      const bool pos = (b.signs[size_t(r) * stride + c / 8] >> (c % 8)) & 1u;
      out[size_t(r) * cols + c] += pos ? m : -m;
    }
  }
}

std::vector<uint8_t> bitstack_encode_block(const BitStackBlock& b, uint32_t layer, TensorRole role, uint32_t index,
                                           uint32_t rows, uint32_t cols) {
  BitStackLayout lay{};
  if (!bitstack_layout_kind(rows, cols, b.rank, b.kind, &lay) || index > 65535 ||
      (b.kind == kBitStackKindScaledFirst && index == 0)) {
    throw std::invalid_argument("bitstack: block too large or of an invalid kind");
  }
  std::vector<uint8_t> out(lay.bytes, 0);
  BitStackBlockHeader h{};
  h.magic = kBitStackBlockMagic;
  h.layer = layer;
  h.role = uint16_t(role);
  h.index = uint16_t(index);
  h.rows = rows;
  h.cols = cols;
  h.rank = b.rank;
  h.kind = b.kind;
  h.sign_row_bytes = lay.sign_row_bytes;
  h.u_offset = uint32_t(lay.u_offset);
  h.v_offset = uint32_t(lay.v_offset);
  h.bytes = lay.bytes;
  if (b.kind == kBitStackKindScaledFirst) std::memcpy(&h.reserved[0], &b.scale, 4);
  std::memcpy(out.data(), &h, sizeof h);
  std::memcpy(out.data() + sizeof h, b.signs.data(), b.signs.size());
  if (b.kind == kBitStackKindLowRank) {
    std::memcpy(out.data() + lay.u_offset, b.u.data(), b.u.size() * 2);
    std::memcpy(out.data() + lay.v_offset, b.v.data(), b.v.size() * 2);
  }
  return out;
}

}  // namespace stk::host

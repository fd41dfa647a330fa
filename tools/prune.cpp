#include "tools/prune.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

#include "runtime/lowbit.h"
#include "runtime/sparse.h"
#include "runtime/weights.h"
#include "c_api/stackrt_internal.h"
#include "tools/distill.h"
#include "tools/teacher_samples.h"
#include "tools/linalg.h"
#include "tools/memory_model.h"
#include "tools/quantize.h"
#include "tools/story_ppl.h"

namespace stk::host {

std::string SparsityPattern::name() const {
  return sparse() ? std::to_string(n) + ":" + std::to_string(m) : std::string("dense");
}

SparsityPattern parse_sparsity(const std::string& text) {
  if (text == "dense" || text == "none") return {};
  const size_t colon = text.find(':');
  auto number = [&](const std::string& s) -> uint32_t {
    if (s.empty() || s.size() > 2 || s.find_first_not_of("0123456789") != std::string::npos) {
      throw std::invalid_argument("sparsity '" + text + "': expected N:M, e.g. 2:4");
    }
    return uint32_t(std::stoul(s));
  };
  if (colon == std::string::npos) throw std::invalid_argument("sparsity '" + text + "': expected N:M, e.g. 2:4");
  SparsityPattern p{number(text.substr(0, colon)), number(text.substr(colon + 1))};
  if (p.n < 1 || p.n >= p.m || p.m > kSparseMaxM) {
    throw std::invalid_argument("sparsity '" + text + "': need 1 <= N < M <= 16");
  }
  return p;
}

PruneMethod parse_prune_method(const std::string& text) {
  if (text == "magnitude") return PruneMethod::Magnitude;
  if (text == "wanda") return PruneMethod::Wanda;
  if (text == "sparsegpt") return PruneMethod::SparseGpt;
  throw std::invalid_argument("prune method '" + text + "': expected magnitude, wanda or sparsegpt");
}

const char* prune_method_name(PruneMethod m) {
  switch (m) {
    case PruneMethod::Magnitude: return "magnitude";
    case PruneMethod::Wanda: return "wanda";
    case PruneMethod::SparseGpt: return "sparsegpt";
  }
  return "?";
}

namespace {

// Keeps the `keep` best of score[c0..c0+len) in mask (ties to the lower column).
void keep_best(const float* score, uint32_t c0, uint32_t len, uint32_t keep, uint8_t* mask) {
  uint32_t order[kSparseMaxM];
  std::iota(order, order + len, 0u);
  std::stable_sort(order, order + len, [&](uint32_t a, uint32_t b) { return score[c0 + a] > score[c0 + b]; });
  for (uint32_t i = 0; i < len; ++i) mask[c0 + order[i]] = i < keep ? 1 : 0;
}

void check_hessian(const std::vector<double>& H, uint32_t cols) {
  if (H.size() != size_t(cols) * cols) throw std::invalid_argument("prune: Hessian shape does not match the weights");
}

}  // namespace

std::vector<uint8_t> nm_mask(const float* score, uint32_t rows, uint32_t cols, SparsityPattern p) {
  std::vector<uint8_t> mask(size_t(rows) * cols, 0);
  for (uint32_t r = 0; r < rows; ++r) {
    const float* s = score + size_t(r) * cols;
    uint8_t* m = mask.data() + size_t(r) * cols;
    for (uint32_t c0 = 0; c0 < cols; c0 += p.m) {
      const uint32_t len = std::min(p.m, cols - c0);
      keep_best(s, c0, len, sparse_keep(p.n, p.m, len), m);
    }
  }
  return mask;
}

std::vector<uint8_t> prune_magnitude(const float* w, uint32_t rows, uint32_t cols, SparsityPattern p) {
  std::vector<float> s(size_t(rows) * cols);
  for (size_t i = 0; i < s.size(); ++i) s[i] = std::fabs(w[i]);
  return nm_mask(s.data(), rows, cols, p);
}

std::vector<uint8_t> prune_wanda(const float* w, uint32_t rows, uint32_t cols, SparsityPattern p,
                                 const std::vector<double>& H) {
  check_hessian(H, cols);
  std::vector<float> norm(cols), s(size_t(rows) * cols);
  for (uint32_t c = 0; c < cols; ++c) norm[c] = float(std::sqrt(std::max(0.0, H[size_t(c) * cols + c])));
  for (uint32_t r = 0; r < rows; ++r)
    for (uint32_t c = 0; c < cols; ++c) s[size_t(r) * cols + c] = std::fabs(w[size_t(r) * cols + c]) * norm[c];
  return nm_mask(s.data(), rows, cols, p);
}

std::vector<uint8_t> prune_sparsegpt(std::vector<float>& w, uint32_t rows, uint32_t cols, SparsityPattern p,
                                     const std::vector<double>& H, const SparseGptOptions& opt) {
  check_hessian(H, cols);
  if (w.size() != size_t(rows) * cols) throw std::invalid_argument("sparsegpt: weight shape");
  const std::vector<float> original = w;
  std::vector<double> Hd = H;
  std::vector<double> W(w.begin(), w.end());
  double mean_diag = 0;
  for (uint32_t c = 0; c < cols; ++c) {
    double& d = Hd[size_t(c) * cols + c];
    if (d <= 0) {  // never-active input: its weights cannot matter
      d = 1.0;
      for (uint32_t r = 0; r < rows; ++r) W[size_t(r) * cols + c] = 0.0;
    }
    mean_diag += d;
  }
  mean_diag /= cols;
  for (uint32_t c = 0; c < cols; ++c) Hd[size_t(c) * cols + c] += opt.damp * mean_diag;
  const std::vector<double> U = inverse_cholesky_upper(Hd, cols, "sparsegpt");
  auto u = [&](uint32_t i, uint32_t j) { return U[size_t(i) * cols + j]; };

  std::vector<uint8_t> mask(size_t(rows) * cols, 1);
  const uint32_t block = std::max(p.m, opt.block / p.m * p.m);
  std::vector<double> err(size_t(rows) * block);
  std::vector<float> s(cols);
  for (uint32_t b0 = 0; b0 < cols; b0 += block) {
    const uint32_t b1 = std::min(cols, b0 + block);
    for (uint32_t i = b0; i < b1; ++i) {
      if ((i - b0) % p.m == 0) {  // choose this group's mask from the updated weights
        const uint32_t len = std::min(p.m, cols - i);
        const uint32_t keep = sparse_keep(p.n, p.m, len);
        for (uint32_t r = 0; r < rows; ++r) {
          for (uint32_t k = 0; k < len; ++k) {
            const double v = W[size_t(r) * cols + i + k], d = u(i + k, i + k);
            s[i + k] = float(v * v / (d * d));
          }
          keep_best(s.data(), i, len, keep, mask.data() + size_t(r) * cols);
        }
      }
      const double d = u(i, i);
      for (uint32_t r = 0; r < rows; ++r) {
        double& wi = W[size_t(r) * cols + i];
        const double q = mask[size_t(r) * cols + i] ? wi : 0.0;
        const double e = (wi - q) / d;
        err[size_t(r) * block + (i - b0)] = e;
        wi = q;
        if (e != 0.0)
          for (uint32_t j = i + 1; j < b1; ++j) W[size_t(r) * cols + j] -= e * u(i, j);
      }
    }
    // Lazy update of the columns after the block.
    for (uint32_t r = 0; r < rows; ++r)
      for (uint32_t i = b0; i < b1; ++i) {
        const double e = err[size_t(r) * block + (i - b0)];
        if (e == 0.0) continue;
        for (uint32_t j = b1; j < cols; ++j) W[size_t(r) * cols + j] -= e * u(i, j);
      }
  }
  for (size_t k = 0; k < w.size(); ++k) w[k] = mask[k] ? float(W[k]) : 0.0f;
  if (opt.refit) {
    w = original;
    if (opt.swaps) refine_mask_swaps(w, mask, rows, cols, p, H, opt.damp);
    refit_kept(w, mask, rows, cols, H, opt.damp);
  }
  return mask;
}

uint64_t refine_mask_swaps(const std::vector<float>& w, std::vector<uint8_t>& mask, uint32_t rows, uint32_t cols,
                           SparsityPattern p, const std::vector<double>& H, double damp) {
  check_hessian(H, cols);
  double mean_diag = 0;
  for (uint32_t c = 0; c < cols; ++c) mean_diag += H[size_t(c) * cols + c];
  mean_diag = std::max(mean_diag / cols, 1e-12);
  std::vector<double> Hd = H;
  for (uint32_t c = 0; c < cols; ++c) Hd[size_t(c) * cols + c] += damp * mean_diag;
  const std::vector<double> G = spd_inverse(Hd, cols, "sparse mask search");  // (H + damp)^-1
  auto g = [&](uint32_t i, uint32_t j) { return G[size_t(i) * cols + j]; };
  uint64_t swaps = 0;
  std::vector<uint32_t> P;      // pruned columns of the row; position = index into A
  std::vector<int32_t> pos(cols);
  std::vector<double> A, alpha, beta, gb, wp;
  for (uint32_t r = 0; r < rows; ++r) {
    const float* wr = w.data() + size_t(r) * cols;
    uint8_t* mr = mask.data() + size_t(r) * cols;
    P.clear();
    for (uint32_t c = 0; c < cols; ++c) {
      pos[c] = -1;
      if (!mr[c]) pos[c] = int32_t(P.size()), P.push_back(c);
    }
    const uint32_t n = uint32_t(P.size());
    if (n == 0 || n == cols) continue;
    // A = [(H^-1)_PP]^-1, alpha = A w_P.
    A.assign(size_t(n) * n, 0.0);
    for (uint32_t i = 0; i < n; ++i)
      for (uint32_t j = 0; j < n; ++j) A[size_t(i) * n + j] = g(P[i], P[j]);
    try {
      A = spd_inverse(A, n, "sparse mask search");
    } catch (const std::runtime_error&) {
      continue;  // keep this row's mask
    }
    wp.resize(n);
    alpha.assign(n, 0.0);
    for (uint32_t i = 0; i < n; ++i) wp[i] = wr[P[i]];
    for (uint32_t i = 0; i < n; ++i)
      for (uint32_t j = 0; j < n; ++j) alpha[i] += A[size_t(i) * n + j] * wp[j];
    beta.resize(n);
    gb.resize(n);
    for (int pass = 0; pass < 8; ++pass) {
      uint64_t made = 0;
      for (uint32_t c0 = 0; c0 < cols; c0 += p.m) {
        const uint32_t len = std::min(p.m, cols - c0);
        // Best swap in this group: add kept b to P, then remove pruned a.
        double best = -1e-12 * mean_diag, best_s = 0, best_delta = 0;
        int32_t best_a = -1, best_b = -1;
        std::vector<double> best_beta;
        for (uint32_t kb = 0; kb < len; ++kb) {
          const uint32_t b = c0 + kb;
          if (!mr[b]) continue;
          for (uint32_t i = 0; i < n; ++i) gb[i] = g(P[i], b);
          double s = g(b, b), ga = 0;
          for (uint32_t i = 0; i < n; ++i) {
            double t = 0;
            for (uint32_t j = 0; j < n; ++j) t += A[size_t(i) * n + j] * gb[j];
            beta[i] = t;
            s -= gb[i] * t;
            ga += gb[i] * alpha[i];
          }
          if (!(s > 1e-15 * g(b, b))) continue;
          const double delta = (wr[b] - ga) / s;
          for (uint32_t ka = 0; ka < len; ++ka) {
            const uint32_t a = c0 + ka;
            if (mr[a]) continue;
            const int32_t ia = pos[a];
            const double num = alpha[ia] - beta[ia] * delta, den = A[size_t(ia) * n + ia] + beta[ia] * beta[ia] / s;
            const double change = delta * delta * s - num * num / den;
            if (change < best) best = change, best_a = int32_t(a), best_b = int32_t(b), best_s = s, best_delta = delta, best_beta = beta;
          }
        }
        if (best_a < 0) continue;
        // A' over P + b (b last): [[A + beta beta^T / s, -beta / s], [-beta^T / s, 1 / s]], then drop a.
        const uint32_t ia = uint32_t(pos[best_a]), m1 = n + 1;
        std::vector<double> Ap(size_t(m1) * m1), alp(m1);
        for (uint32_t i = 0; i < n; ++i) {
          for (uint32_t j = 0; j < n; ++j) Ap[size_t(i) * m1 + j] = A[size_t(i) * n + j] + best_beta[i] * best_beta[j] / best_s;
          Ap[size_t(i) * m1 + n] = Ap[size_t(n) * m1 + i] = -best_beta[i] / best_s;
          alp[i] = alpha[i] - best_beta[i] * best_delta;
        }
        Ap[size_t(n) * m1 + n] = 1.0 / best_s;
        alp[n] = best_delta;
        const double paa = Ap[size_t(ia) * m1 + ia];
        // Removing a: A'' = A'_rest - A'_{rest,a} A'_{a,rest} / A'_aa; b takes a's slot.
        auto slot = [&](uint32_t i) { return i == ia ? n : i; };  // new position i reads old index slot(i)
        for (uint32_t i = 0; i < n; ++i) {
          const uint32_t oi = slot(i);
          for (uint32_t j = 0; j < n; ++j) {
            const uint32_t oj = slot(j);
            A[size_t(i) * n + j] = Ap[size_t(oi) * m1 + oj] - Ap[size_t(oi) * m1 + ia] * Ap[size_t(ia) * m1 + oj] / paa;
          }
          alpha[i] = alp[oi] - Ap[size_t(oi) * m1 + ia] * alp[ia] / paa;
        }
        P[ia] = uint32_t(best_b);
        pos[best_b] = int32_t(ia);
        pos[best_a] = -1;
        mr[best_a] = 1;
        mr[best_b] = 0;
        ++made;
      }
      swaps += made;
      if (made == 0) break;
    }
  }
  return swaps;
}

void refit_kept(std::vector<float>& w, const std::vector<uint8_t>& mask, uint32_t rows, uint32_t cols,
                const std::vector<double>& H, double damp) {
  check_hessian(H, cols);
  double mean_diag = 0;
  for (uint32_t c = 0; c < cols; ++c) mean_diag += H[size_t(c) * cols + c];
  mean_diag = std::max(mean_diag / cols, 1e-12);
  std::vector<uint32_t> S;
  std::vector<double> A, b, Hw(cols);
  for (uint32_t r = 0; r < rows; ++r) {
    float* wr = w.data() + size_t(r) * cols;
    S.clear();
    for (uint32_t c = 0; c < cols; ++c)
      if (mask[size_t(r) * cols + c]) S.push_back(c);
    const uint32_t k = uint32_t(S.size());
    if (k == 0) continue;
    for (uint32_t i = 0; i < cols; ++i) {
      double s = 0;
      for (uint32_t j = 0; j < cols; ++j) s += H[size_t(i) * cols + j] * wr[j];
      Hw[i] = s + damp * mean_diag * wr[i];
    }
    A.assign(size_t(k) * k, 0.0);
    b.assign(k, 0.0);
    for (uint32_t i = 0; i < k; ++i) {
      for (uint32_t j = 0; j < k; ++j) A[size_t(i) * k + j] = H[size_t(S[i]) * cols + S[j]];
      A[size_t(i) * k + i] += damp * mean_diag;
      b[i] = Hw[S[i]];
    }
    if (!cholesky_lower(A, k)) continue;  // keep the weights as they are
    for (uint32_t i = 0; i < k; ++i) {  // L y = b, then L^T v = y
      double s = b[i];
      for (uint32_t j = 0; j < i; ++j) s -= A[size_t(i) * k + j] * b[j];
      b[i] = s / A[size_t(i) * k + i];
    }
    for (uint32_t i = k; i-- > 0;) {
      double s = b[i];
      for (uint32_t j = i + 1; j < k; ++j) s -= A[size_t(j) * k + i] * b[j];
      b[i] = s / A[size_t(i) * k + i];
    }
    for (uint32_t c = 0; c < cols; ++c) wr[c] = 0.0f;
    for (uint32_t i = 0; i < k; ++i) wr[S[i]] = float(b[i]);
  }
}

std::vector<uint8_t> encode_sparse(const float* w, const uint8_t* mask, uint32_t rows, uint32_t cols,
                                   SparsityPattern p, const FormatSpec& value, uint32_t params[4], bool search) {
  if (!p.sparse()) throw std::invalid_argument("encode_sparse: dense pattern");
  const uint32_t kept = (cols / p.m) * p.n + sparse_keep(p.n, p.m, cols % p.m);
  const uint32_t bits = sparse_index_bits(p.m);
  std::vector<float> vals(size_t(rows) * kept);
  std::vector<uint8_t> idx_bits(size_t(rows) * ((uint64_t(kept) * bits + 7) / 8), 0);
  const size_t idx_row = idx_bits.size() / rows;
  for (uint32_t r = 0; r < rows; ++r) {
    uint32_t j = 0;
    for (uint32_t c0 = 0; c0 < cols; c0 += p.m) {
      const uint32_t len = std::min(p.m, cols - c0);
      const uint32_t want = sparse_keep(p.n, p.m, len);
      uint32_t got = 0;
      for (uint32_t k = 0; k < len; ++k) {
        if (!mask[size_t(r) * cols + c0 + k]) continue;
        if (++got > want) break;
        vals[size_t(r) * kept + j] = w[size_t(r) * cols + c0 + k];
        const uint64_t bit = uint64_t(j) * bits;
        for (uint32_t b = 0; b < bits; ++b)
          if ((k >> b) & 1u) idx_bits[r * idx_row + (bit + b) / 8] |= uint8_t(1u << ((bit + b) % 8));
        ++j;
      }
      if (got != want) {
        throw std::invalid_argument("encode_sparse: row " + std::to_string(r) + " group at column " +
                                    std::to_string(c0) + " keeps " + std::to_string(got) + ", the " + p.name() +
                                    " rule keeps " + std::to_string(want));
      }
    }
  }
  uint32_t vparams[4] = {0, 0, 0, 0};
  std::vector<uint8_t> values;
  if (is_lowbit_format(value.format)) {
    values = lowbit_pack(lowbit_quantize_rtn(vals.data(), rows, kept, value, nullptr, search), vparams);
  } else if (value.format == WeightFormat::F32 || value.format == WeightFormat::Q8) {
    values = encode_weights(vals.data(), rows, kept, value.format, vparams);
  } else {
    throw std::invalid_argument(std::string("sparse values cannot be ") + weight_format_name(value.format));
  }
  params[0] = p.n;
  params[1] = p.m;
  params[2] = uint32_t(value.format);
  params[3] = vparams[0];
  SparseLayout L;
  if (!sparse_layout(rows, cols, params, &L) || L.values_bytes != values.size() || L.kept != kept) {
    throw std::logic_error("encode_sparse: layout mismatch");
  }
  std::vector<uint8_t> out(L.total_bytes, 0);
  std::memcpy(out.data(), values.data(), values.size());
  std::memcpy(out.data() + L.index_offset, idx_bits.data(), idx_bits.size());
  return out;
}

namespace {

// Prunes each row r of w alone, minimising sum_t (a_t (v . xs_t) - y_t)^2 for
// per-row, per-sample weights a_t and targets y_t (weighted(r, t) -> {a, y}):
// a least-squares problem with its own Hessian H_r = sum_t a_t^2 xs xs^T, so
// each row gets SparseGPT, mask swaps and the refit with H_r. w holds the
// dense weights on entry and the kept weights on return.
template <class Weighted>
void prune_rows_weighted(const std::vector<float>& xs, std::vector<float>& w, uint32_t rows, uint32_t cols,
                         SparsityPattern p, const SparseGptOptions& opt, const Weighted& weighted,
                         std::vector<uint8_t>* mask) {
  const size_t T = xs.size() / cols;
  mask->assign(size_t(rows) * cols, 0);
  std::vector<double> H(size_t(cols) * cols), b(cols);
  for (uint32_t r = 0; r < rows; ++r) {
    std::fill(H.begin(), H.end(), 0.0);
    std::fill(b.begin(), b.end(), 0.0);
    for (size_t t = 0; t < T; ++t) {
      const float* x = xs.data() + t * cols;
      const std::pair<double, double> ay = weighted(r, t);
      const double a2 = ay.first * ay.first, ay1 = ay.first * ay.second;
      if (a2 == 0.0) continue;
      for (uint32_t i = 0; i < cols; ++i) {  // upper triangle; mirrored below
        if (x[i] == 0.0f) continue;
        const double ax = a2 * x[i];
        double* hr = H.data() + size_t(i) * cols;
        for (uint32_t j = i; j < cols; ++j) hr[j] += ax * x[j];
        b[i] += ay1 * x[i];
      }
    }
    for (uint32_t i = 0; i < cols; ++i)
      for (uint32_t j = 0; j < i; ++j) H[size_t(i) * cols + j] = H[size_t(j) * cols + i];
    // Target weights (H + damp)^-1 b, as dense_target does for one row.
    float* wr = w.data() + size_t(r) * cols;
    std::vector<double> A = H;
    double mean_diag = 0;
    for (uint32_t i = 0; i < cols; ++i) mean_diag += A[size_t(i) * cols + i];
    mean_diag = std::max(mean_diag / cols, 1e-12);
    for (uint32_t i = 0; i < cols; ++i) {
      A[size_t(i) * cols + i] += opt.damp * mean_diag;
      b[i] += opt.damp * mean_diag * wr[i];
    }
    std::vector<float> row(wr, wr + cols);
    if (spd_solve(A, cols, b))
      for (uint32_t i = 0; i < cols; ++i) row[i] = float(b[i]);
    const std::vector<uint8_t> m = prune_sparsegpt(row, 1, cols, p, H, opt);
    std::copy(row.begin(), row.end(), wr);
    std::copy(m.begin(), m.end(), mask->begin() + long(size_t(r) * cols));
  }
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }

// Row r's dot product with input t.
double dot_row(const std::vector<float>& w, uint32_t r, const std::vector<float>& x, size_t t, uint32_t cols) {
  double s = 0;
  for (uint32_t c = 0; c < cols; ++c) s += double(w[size_t(r) * cols + c]) * x[t * cols + c];
  return s;
}

// The SwiGLU block computes h = silu(w1 x) * (w3 x). Its up projection w3,
// pruned after the gate w1, restores h itself given the pruned gate:
// minimise sum_t (silu(g~_t) (v . xs_t) - h_t)^2 with g~ the pruned gate's
// values and h the dense block's. (Weighting the gate's own error by
// silu'(g) u, its first-order effect on h, measured no better than the plain
// dense target: 17.81 vs 17.84 on held-out stories 64-463.)
void prune_up(const std::vector<float>& xs, const std::vector<float>& xd, const std::vector<float>& w1p,
              const HostTensor& w1, const HostTensor& w3, std::vector<float>& w, SparsityPattern p,
              const SparseGptOptions& opt, std::vector<uint8_t>* mask) {
  const uint32_t cols = w3.cols;
  w = w3.data;
  prune_rows_weighted(xs, w, w3.rows, cols, p, opt, [&](uint32_t r, size_t t) {
    const double a = silu(dot_row(w1p, r, xs, t, cols));
    return std::make_pair(a, silu(dot_row(w1.data, r, xd, t, cols)) * dot_row(w3.data, r, xd, t, cols));
  }, mask);
}

PackedTensor packed_header(const HostTensor& t) {
  PackedTensor p;
  p.name = t.name;
  p.role = t.role;
  p.layer = t.layer;
  p.rows = t.rows;
  p.cols = t.cols;
  return p;
}

PackedTensor encode_dense(const HostTensor& t, const FormatSpec& spec) {
  PackedTensor p = packed_header(t);
  p.format = spec.format;
  if (is_lowbit_format(spec.format)) {
    p.data = lowbit_pack(lowbit_quantize_rtn(t.data.data(), t.rows, t.cols, spec), p.params);
  } else {
    p.data = encode_weights(t.data.data(), t.rows, t.cols, spec.format, p.params);
  }
  return p;
}

// Trains the kept weights of the pruned matrices and every norm vector
// towards the dense model, then encodes them again.
void distill_pruned(const HostModel& dense, HostModel& student, const std::vector<std::vector<uint8_t>>& masks,
                    const std::vector<SparsityPattern>& patterns, const std::vector<FormatSpec>& formats,
                    const PackPlanOptions& plan, PackedModel* pm) {
  std::vector<std::vector<uint8_t>> trainable(student.tensors.size());
  for (size_t i = 0; i < student.tensors.size(); ++i) {
    const HostTensor& t = student.tensors[i];
    if (patterns[i].sparse()) trainable[i] = masks[i];
    else if (!is_matrix(t)) trainable[i].assign(t.data.size(), 1);
  }
  DistillOptions opt;
  opt.max_epochs = plan.distill_epochs;
  opt.threads = plan.threads;
  opt.log = plan.log;
  distill(dense, student, trainable,
          distill_sequences(dense, pm->tokenizer_section, plan.calib, plan.distill_samples, plan.threads), opt);
  for (size_t i = 0; i < student.tensors.size(); ++i) {
    const HostTensor& t = student.tensors[i];
    if (patterns[i].sparse()) {
      PackedTensor p = packed_header(t);
      p.format = WeightFormat::Sparse;
      p.data = encode_sparse(t.data.data(), masks[i].data(), t.rows, t.cols, patterns[i], formats[i], p.params);
      pm->tensors[i] = std::move(p);
    } else if (!trainable[i].empty()) {
      pm->tensors[i] = encode_dense(t, FormatSpec{});
    }
  }
}

}  // namespace

PackedModel pack_sparse(const HostModel& model, std::vector<uint8_t> tokenizer_section, const PackPlanOptions& plan,
                        const SparsePackOptions& sp) {
  if (plan.bpw > 0) throw std::invalid_argument("--bpw cannot be combined with --sparsity");
  const bool calibrated = !plan.calib.empty();
  if (needs_calibration(sp.method) && !calibrated) {
    throw std::invalid_argument(std::string("--prune ") + prune_method_name(sp.method) + " needs --calib TEXT");
  }
  const std::vector<FormatSpec> formats = apply_rules(model, plan);
  std::vector<SparsityPattern> patterns(model.tensors.size());
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    const HostTensor& t = model.tensors[i];
    if (is_matrix(t) && is_per_layer_role(t.role)) patterns[i] = sp.pattern;
  }
  for (const auto& rule : sp.rules) {
    bool hit = false;
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const HostTensor& t = model.tensors[i];
      if (!is_matrix(t) || fnmatch(rule.first.c_str(), t.name.c_str(), 0) != 0) continue;
      patterns[i] = rule.second;
      hit = true;
    }
    if (!hit) throw std::invalid_argument("--sparse-layer '" + rule.first + "': the pattern matches no matrix");
  }

  PackedModel pm;
  pm.config = model.config;
  pm.tokenizer_section = std::move(tokenizer_section);
  for (const HostTensor& t : model.tensors) pm.tensors.push_back(encode_dense(t, FormatSpec{}));  // f32 to start

  const bool use_dense_target = sp.method == PruneMethod::SparseGpt && sp.sparsegpt.dense_target;
  std::map<std::string, std::vector<float>> dense_inputs;
  if (use_dense_target) {
    std::set<std::string> all;
    for (size_t i = 0; i < model.tensors.size(); ++i)
      if (patterns[i].sparse() && model.tensors[i].layer != kNoLayer) all.insert(model.tensors[i].name);
    dense_inputs = collect_inputs(pm, plan.calib, plan.threads, all);  // pm is still all f32 here
  }
  // Within a layer the matrices are pruned in the order data flows through
  // them (q/k/v, then o, then gate/up, then down), each calibrated on inputs
  // from the model with everything before it already pruned: a matrix then
  // also corrects (towards the dense target) the error of the ones before it.
  // w3 comes after w1: it is fitted knowing the pruned gate (prune_up_with_gate).
  const std::vector<std::vector<TensorRole>> stages = {{TensorRole::Wq, TensorRole::Wk, TensorRole::Wv},
                                                      {TensorRole::Wo},
                                                      {TensorRole::W1},
                                                      {TensorRole::W3},
                                                      {TensorRole::W2}};
  std::map<uint32_t, std::vector<float>> pruned_gate;  // layer -> w1 as pruned (float values)
  HostModel student = model;  // the pruned float weights, for distillation
  std::vector<std::vector<uint8_t>> masks(model.tensors.size());  // keep-masks of the pruned matrices
  auto in_stage = [&](const HostTensor& t, size_t stage) {
    if (t.layer == kNoLayer) return stage == 0;  // global matrices: one pass
    const auto& roles = stages[stage];
    return std::find(roles.begin(), roles.end(), t.role) != roles.end();
  };
  const uint32_t L = model.config.n_layers;
  for (uint32_t step = 0; step <= L * stages.size(); ++step) {
    const uint32_t layer = step < L * stages.size() ? step / uint32_t(stages.size()) : kNoLayer;
    const size_t stage = layer == kNoLayer ? 0 : step % stages.size();
    std::set<std::string> wanted;
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const HostTensor& t = model.tensors[i];
      if (is_matrix(t) && t.layer == layer && in_stage(t, stage) && patterns[i].sparse() && needs_calibration(sp.method)) {
        wanted.insert(t.name);
      }
    }
    HessianMap hs;
    std::map<std::string, std::vector<float>> pruned_inputs;
    if (use_dense_target && layer != kNoLayer) {
      if (!wanted.empty()) pruned_inputs = collect_inputs(pm, plan.calib, plan.threads, wanted);
    } else if (!wanted.empty()) {
      hs = collect_hessians(pm, plan.calib, plan.threads, wanted);
    }
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const HostTensor& t = model.tensors[i];
      if (!is_matrix(t) || t.layer != layer || !in_stage(t, stage)) continue;
      if (!patterns[i].sparse()) {
        pm.tensors[i] = encode_dense(t, formats[i]);
        continue;
      }
      std::vector<float> w = t.data;
      std::vector<uint8_t> mask;
      const CalibHessian* H = nullptr;
      CalibHessian target;
      if (pruned_inputs.count(t.name)) {
        dense_target(pruned_inputs.at(t.name), dense_inputs.at(t.name), t.cols, sp.sparsegpt.damp, w, t.rows,
                     &target.h);
        target.cols = t.cols;
        H = &target;
      } else if (needs_calibration(sp.method)) {
        auto it = hs.find(t.name);
        if (it == hs.end()) throw std::runtime_error("no calibration statistics for " + t.name);
        H = &it->second;
      }
      if (pruned_inputs.count(t.name) && t.role == TensorRole::W3 && pruned_gate.count(t.layer)) {
        prune_up(pruned_inputs.at(t.name), dense_inputs.at(t.name), pruned_gate.at(t.layer),
                 *model.find(TensorRole::W1, t.layer), t, w, patterns[i], sp.sparsegpt, &mask);
      } else {
        switch (sp.method) {
          case PruneMethod::Magnitude: mask = prune_magnitude(w.data(), t.rows, t.cols, patterns[i]); break;
          case PruneMethod::Wanda: mask = prune_wanda(w.data(), t.rows, t.cols, patterns[i], H->h); break;
          case PruneMethod::SparseGpt:
            mask = prune_sparsegpt(w, t.rows, t.cols, patterns[i], H->h, sp.sparsegpt);
            break;
        }
      }
      if (t.role == TensorRole::W1 && use_dense_target) pruned_gate[t.layer] = w;
      student.tensors[i].data = w;
      masks[i] = mask;
      PackedTensor p = packed_header(t);
      p.format = WeightFormat::Sparse;
      p.data = encode_sparse(w.data(), mask.data(), t.rows, t.cols, patterns[i], formats[i], p.params);
      pm.tensors[i] = std::move(p);
    }
    if (plan.log && calibrated && (layer == kNoLayer || stage + 1 == stages.size())) {
      plan.log(layer == kNoLayer ? std::string("pruned: global matrices done")
                                 : "pruned: layer " + std::to_string(layer) + " done");
    }
  }
  if (plan.distill_epochs > 0 && calibrated) distill_pruned(model, student, masks, patterns, formats, plan, &pm);
  return pm;
}

}  // namespace stk::host

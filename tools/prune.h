// N:M structured pruning for `stk pack --sparsity N:M` (host tool code):
// choosing which weights of every group of M consecutive inputs to keep
// (magnitude, Wanda, SparseGPT), and encoding the result as
// WeightFormat::Sparse (runtime/sparse.h) with the kept values in F32, Q8 or
// a low-bit format.
//
// Tail rule: a row whose length is not a multiple of M ends in a group of
// t = cols % M inputs, which keeps ceil(N*t/M) of them (runtime/sparse.h).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tools/calib.h"
#include "tools/host_model.h"
#include "tools/lowbit_quant.h"
#include "tools/pack_plan.h"
#include "tools/stk_writer.h"

namespace stk::host {

struct SparsityPattern {
  uint32_t n = 0, m = 0;  // n == 0: dense
  bool sparse() const { return n != 0; }
  std::string name() const;  // "2:4" or "dense"
};
// "N:M" with 1 <= N < M <= 16, or "dense"; throws std::invalid_argument.
SparsityPattern parse_sparsity(const std::string& text);

enum class PruneMethod { Magnitude, Wanda, SparseGpt };
// "magnitude", "wanda", "sparsegpt"; throws std::invalid_argument.
PruneMethod parse_prune_method(const std::string& text);
const char* prune_method_name(PruneMethod m);
inline bool needs_calibration(PruneMethod m) { return m != PruneMethod::Magnitude; }

// Keep-mask (1 = kept) of a rows x cols matrix: in each group the weights with
// the largest score, ties to the lower column.
std::vector<uint8_t> nm_mask(const float* score, uint32_t rows, uint32_t cols, SparsityPattern p);

// Magnitude (score |w|) and Wanda (score |w| * ||x_c||, the input norm of
// column c being sqrt(H_cc)): the kept weights are unchanged.
std::vector<uint8_t> prune_magnitude(const float* w, uint32_t rows, uint32_t cols, SparsityPattern p);
std::vector<uint8_t> prune_wanda(const float* w, uint32_t rows, uint32_t cols, SparsityPattern p,
                                 const std::vector<double>& H);

struct SparseGptOptions {
  double damp = 0.01;      // times the mean of diag(H), added to the diagonal
  uint32_t block = 128;    // columns per lazy-update block (rounded down to a multiple of M)
  // Afterwards, re-solve each row's kept weights exactly for the chosen mask:
  // minimise (w - v)^T H (w - v) with v zero off the mask (H damped as above).
  bool refit = true;
  // Before the refit, improve each row's mask by swaps inside its groups
  // (refine_mask_swaps) until none lowers the refit's error.
  bool swaps = true;
  // pack_sparse: fit each layer to the *dense* model's outputs, not only to
  // its own pruned inputs (min ||X_dense w - X_pruned v||), so a layer also
  // corrects the error the pruned layers before it introduced.
  bool dense_target = true;
};

// Local search over masks: per row, swap a pruned and a kept weight of one
// group when that lowers the error of the exact refit below, (w - v)^T H (w - v)
// minimised over v zero off the mask (H damped), which for the pruned set P is
// w_P^T [(H^-1)_PP]^-1 w_P (the OBS error of removing P). Each candidate swap
// is priced in O(1) after an O(|P|^2) solve per kept weight, using the
// block-inverse update of [(H^-1)_PP]^-1. Returns the swaps made.
uint64_t refine_mask_swaps(const std::vector<float>& w, std::vector<uint8_t>& mask, uint32_t rows, uint32_t cols,
                           SparsityPattern p, const std::vector<double>& H, double damp);

// The exact least-squares refit above, for any mask; w updated in place.
void refit_kept(std::vector<float>& w, const std::vector<uint8_t>& mask, uint32_t rows, uint32_t cols,
                const std::vector<double>& H, double damp);
// SparseGPT (Frantar & Alistarh 2023): columns left to right in blocks; at the
// first column of each group the N:M mask is chosen by w^2 / [H^-1]_cc^2
// (Cholesky factor of the inverse Hessian), and each pruned weight's error is
// spread over the later columns (OBS update), so the kept weights change.
// w is updated in place (pruned weights become 0); returns the keep-mask.
std::vector<uint8_t> prune_sparsegpt(std::vector<float>& w, uint32_t rows, uint32_t cols, SparsityPattern p,
                                     const std::vector<double>& H, const SparseGptOptions& opt = {});

// Encodes the kept weights (mask must keep exactly the rule's count in every
// group) as WeightFormat::Sparse; values in `value` (f32, q8 or low-bit).
// Fills params[4].
std::vector<uint8_t> encode_sparse(const float* w, const uint8_t* mask, uint32_t rows, uint32_t cols,
                                   SparsityPattern p, const FormatSpec& value, uint32_t params[4],
                                   bool search = true);  // low-bit values: clip search (slow) or plain min/max

// `stk pack --sparsity`: which matrices are pruned and how.
struct SparsePackOptions {
  SparsityPattern pattern;  // every per-layer matrix (attention and MLP)
  std::vector<std::pair<std::string, SparsityPattern>> rules;  // glob -> pattern ("dense" excludes), last wins
  PruneMethod method = PruneMethod::Magnitude;
  SparseGptOptions sparsegpt;
};

// Prunes and encodes the model layer by layer; with calibration (plan.calib),
// each layer's statistics come from the model whose earlier layers are
// already pruned. Value formats come from plan.base and plan.rules; matrices
// that stay dense are encoded round-to-nearest.
PackedModel pack_sparse(const HostModel& model, std::vector<uint8_t> tokenizer_section, const PackPlanOptions& plan,
                        const SparsePackOptions& sp);

}  // namespace stk::host

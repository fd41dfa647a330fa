// Portable reference kernel for N:M sparse weights (runtime/sparse.h), float
// activations. Kept values are decoded 32 at a time with their input columns,
// then multiplied with each token's gathered inputs in kept order; the SIMD
// kernels are tested against this.
#include "runtime/kernels/kernels.h"
#include "runtime/sparse.h"

namespace stk {

void matmul_sparse_scalar(const WeightView& w, const Activations& a, float* y, size_t ldy, uint32_t r0, uint32_t r1) {
  SparseLayout L;
  if (!sparse_layout(w.rows, w.cols, w.params, &L)) return;  // model_open validated it
  const WeightView v = sparse_values_view(w, L);
  constexpr uint32_t kChunk = 32;
  constexpr uint32_t kTokens = 16;  // accumulators kept across chunks
  float vals[kChunk];
  uint32_t col[kChunk];
  for (uint32_t r = r0; r < r1; ++r) {
    const uint8_t* idx = w.data + L.index_offset + uint64_t(r) * L.index_row_bytes;
    for (uint32_t t0 = 0; t0 < a.n; t0 += kTokens) {
      const uint32_t nt = a.n - t0 < kTokens ? a.n - t0 : kTokens;
      float acc[kTokens] = {0};
      for (uint32_t j0 = 0; j0 < L.kept; j0 += kChunk) {
        const uint32_t count = L.kept - j0 < kChunk ? L.kept - j0 : kChunk;
        sparse_values(v, r, j0, count, vals);
        for (uint32_t i = 0; i < count; ++i) col[i] = sparse_column(L, w.cols, j0 + i, sparse_index(idx, j0 + i, L.bits));
        for (uint32_t t = 0; t < nt; ++t) {
          const float* x = a.x + size_t(t0 + t) * a.ldx;
          float s = acc[t];
          for (uint32_t i = 0; i < count; ++i) s += vals[i] * x[col[i]];
          acc[t] = s;
        }
      }
      for (uint32_t t = 0; t < nt; ++t) y[size_t(t0 + t) * ldy + r] = acc[t];
    }
  }
}

}  // namespace stk

#include "tools/bitstack_distill.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <stdexcept>

#include "runtime/bitstack_format.h"
#include "runtime/half.h"

namespace stk::host {
namespace {

// Float copies of one tensor's trainable block parameters.
struct BlockParams {
  uint32_t kind, rank;
  std::vector<float> u, v;  // LowRank: [rank][rows], [rank][cols]
  float scale = 1.0f;       // ScaledFirst: times block 0's magnitude
  float u_step = 0, v_step = 0, s_step = 0;  // RMS entries: each group's Adam step unit
};

struct TensorState {
  uint32_t rows, cols;
  std::vector<std::vector<float>> signs;  // per block, rows x cols of +-1
  std::vector<BlockParams> p;
};

float rms(const std::vector<float>& x) {
  double s = 0;
  for (float v : x) s += double(v) * v;
  return x.empty() ? 0.0f : float(std::sqrt(s / double(x.size())));
}

TensorState load_state(const StackedTensor& st, const HostTensor& t) {
  TensorState s{t.rows, t.cols, {}, {}};
  const uint32_t stride = (t.cols + 7) / 8;
  for (const BitStackBlock& b : *st.blocks) {
    std::vector<float> sg(size_t(t.rows) * t.cols);
    for (uint32_t r = 0; r < t.rows; ++r)
      for (uint32_t c = 0; c < t.cols; ++c)
        sg[size_t(r) * t.cols + c] = (b.signs[size_t(r) * stride + c / 8] >> (c % 8)) & 1 ? 1.0f : -1.0f;
    s.signs.push_back(std::move(sg));
    BlockParams p{b.kind, b.rank, {}, {}, b.scale};
    if (b.kind == kBitStackKindLowRank) {
      for (uint16_t h : b.u) p.u.push_back(half_to_float(h));
      for (uint16_t h : b.v) p.v.push_back(half_to_float(h));
      p.u_step = rms(p.u);
      p.v_step = rms(p.v);
    } else {
      p.s_step = std::fabs(b.scale);
    }
    s.p.push_back(std::move(p));
  }
  if (s.p.empty() || s.p[0].kind != kBitStackKindLowRank) throw std::invalid_argument("bitstack distill: block 0 must be low-rank");
  return s;
}

// m (rows x cols) = U^T V of a low-rank block.
void magnitude(const BlockParams& p, uint32_t rows, uint32_t cols, float* m) {
  std::fill(m, m + size_t(rows) * cols, 0.0f);
  for (uint32_t k = 0; k < p.rank; ++k)
    for (uint32_t r = 0; r < rows; ++r) {
      const float ur = p.u[size_t(k) * rows + r];
      const float* vk = &p.v[size_t(k) * cols];
      float* mr = m + size_t(r) * cols;
      for (uint32_t c = 0; c < cols; ++c) mr[c] += ur * vk[c];
    }
}

// W = (sum over the first n blocks of S_b ⊙ M_b) ⊙ in_scale.
void build(const TensorState& s, const std::vector<float>& in_scale, uint32_t n, std::vector<float>* W) {
  const size_t N = size_t(s.rows) * s.cols;
  std::vector<float> m0(N), mb(N);
  W->assign(N, 0.0f);
  magnitude(s.p[0], s.rows, s.cols, m0.data());
  for (uint32_t b = 0; b < n; ++b) {
    const BlockParams& p = s.p[b];
    const float* m = m0.data();
    if (b > 0 && p.kind == kBitStackKindLowRank) magnitude(p, s.rows, s.cols, mb.data()), m = mb.data();
    const float a = p.kind == kBitStackKindLowRank ? 1.0f : p.scale;
    for (size_t i = 0; i < N; ++i) (*W)[i] += s.signs[b][i] * a * m[i];
  }
  if (!in_scale.empty())
    for (size_t i = 0; i < N; ++i) (*W)[i] *= in_scale[i % s.cols];
}

// Gradients of the first n blocks' parameters from dW (layout of BlockParams:
// g[b].u, g[b].v, g[b].scale).
void backward(const TensorState& s, const std::vector<float>& in_scale, uint32_t n, const std::vector<float>& dW,
              std::vector<BlockParams>* g) {
  const size_t N = size_t(s.rows) * s.cols;
  std::vector<float> G(N), G0(N, 0.0f), m0(N);
  magnitude(s.p[0], s.rows, s.cols, m0.data());
  auto factor_grads = [&](const BlockParams& p, const std::vector<float>& Gb, BlockParams* gp) {
    for (uint32_t k = 0; k < p.rank; ++k)
      for (uint32_t r = 0; r < s.rows; ++r) {
        const float* gr = &Gb[size_t(r) * s.cols];
        const float* vk = &p.v[size_t(k) * s.cols];
        const float ur = p.u[size_t(k) * s.rows + r];
        float du = 0.0f;
        float* dv = &gp->v[size_t(k) * s.cols];
        for (uint32_t c = 0; c < s.cols; ++c) {
          du += gr[c] * vk[c];
          dv[c] += gr[c] * ur;
        }
        gp->u[size_t(k) * s.rows + r] += du;
      }
  };
  for (uint32_t b = 0; b < n; ++b) {
    const BlockParams& p = s.p[b];
    for (size_t i = 0; i < N; ++i) G[i] = dW[i] * (in_scale.empty() ? 1.0f : in_scale[i % s.cols]) * s.signs[b][i];
    if (p.kind == kBitStackKindLowRank && b > 0) {
      factor_grads(p, G, &(*g)[b]);
    } else {
      const float a = b == 0 ? 1.0f : p.scale;
      double ds = 0;
      for (size_t i = 0; i < N; ++i) {
        G0[i] += a * G[i];
        ds += double(G[i]) * m0[i];
      }
      if (b > 0) (*g)[b].scale += float(ds);
    }
  }
  factor_grads(s.p[0], G0, &(*g)[0]);
}

std::vector<BlockParams> zero_like(const std::vector<BlockParams>& p) {
  std::vector<BlockParams> z = p;
  for (BlockParams& b : z) {
    std::fill(b.u.begin(), b.u.end(), 0.0f);
    std::fill(b.v.begin(), b.v.end(), 0.0f);
    b.scale = 0.0f;
  }
  return z;
}

}  // namespace

DistillReport distill_bitstack(const HostModel& teacher, HostModel& student, std::vector<StackedTensor>& stacked,
                               std::vector<GridTensor>& grid, const std::vector<uint32_t>& load_order,
                               const std::vector<std::vector<int32_t>>& sequences, const DistillOptions& opt) {
  if (sequences.size() < 2) throw std::invalid_argument("distill: needs at least two calibration stories");
  const size_t L = stacked.size();
  std::vector<TensorState> st;
  for (const StackedTensor& s : stacked) st.push_back(load_state(s, student.tensors.at(s.tensor)));
  std::vector<size_t> norms;
  for (size_t i = 0; i < student.tensors.size(); ++i)
    if (student.tensors[i].rows == 1) norms.push_back(i);
  // Grid tensors: latent weights, starting at the codes' values.
  std::vector<std::vector<float>> latent(grid.size());
  std::vector<float> grid_step(grid.size());
  for (size_t j = 0; j < grid.size(); ++j) {
    const LowbitTensor& q = *grid[j].codes;
    latent[j] = dequantize_lowbit(q);
    lowbit_round_to_grid(q, latent[j], &student.tensors.at(grid[j].tensor).data, nullptr);
    grid_step[j] = rms(latent[j]);
  }

  // Blocks of each tensor inside the first `prefix` blocks of the load order.
  const uint32_t n_min = uint32_t(L), total = uint32_t(load_order.size());
  std::vector<std::vector<uint32_t>> depth_at(total + 1, std::vector<uint32_t>(L, 0));
  for (uint32_t i = 0; i < total; ++i) {
    depth_at[i + 1] = depth_at[i];
    ++depth_at[i + 1].at(load_order[i]);
  }
  for (uint32_t l = 0; l < L; ++l)
    if (depth_at[n_min][l] != 1) throw std::invalid_argument("bitstack distill: the order must start with every first block");
  auto set_prefix = [&](uint32_t prefix) {
    for (size_t l = 0; l < L; ++l) build(st[l], stacked[l].in_scale, depth_at[prefix][l], &student.tensors[stacked[l].tensor].data);
  };

  std::vector<std::vector<float>> teacher_logp(sequences.size());
  parallel_for(sequences.size(), opt.threads, [&](size_t i) { teacher_logp[i] = model_log_probs(teacher, sequences[i]); });
  const size_t n_val = std::max<size_t>(1, sequences.size() / 8), n_train = sequences.size() - n_val;
  std::vector<uint32_t> val_prefix;
  for (uint32_t q = 1; q <= 4; ++q) val_prefix.push_back(n_min + uint32_t(uint64_t(total - n_min) * q / 4));
  auto held_back_kl = [&] {
    double sum = 0;
    for (uint32_t prefix : val_prefix) {
      set_prefix(prefix);
      std::vector<double> kl(n_val);
      parallel_for(n_val, opt.threads, [&](size_t i) {
        kl[i] = kl_loss(student, sequences[n_train + i], teacher_logp[n_train + i]);
      });
      size_t positions = 0;
      for (size_t i = 0; i < n_val; ++i) positions += sequences[n_train + i].size();
      sum += std::accumulate(kl.begin(), kl.end(), 0.0) / double(positions);
    }
    return sum / double(val_prefix.size());
  };

  // Adam state: per tensor, moments shaped like its parameters; per norm vector.
  std::vector<std::vector<BlockParams>> m1(L), m2(L);
  for (size_t l = 0; l < L; ++l) m1[l] = m2[l] = zero_like(st[l].p);
  std::vector<std::vector<float>> n1(norms.size()), n2(norms.size()), e1(grid.size()), e2(grid.size());
  auto zero_moments = [&] {
    for (size_t l = 0; l < L; ++l) m1[l] = m2[l] = zero_like(st[l].p);
    for (size_t j = 0; j < norms.size(); ++j) n1[j].assign(student.tensors[norms[j]].data.size(), 0.0f), n2[j] = n1[j];
    for (size_t j = 0; j < grid.size(); ++j) e1[j].assign(latent[j].size(), 0.0f), e2[j] = e1[j];
  };
  zero_moments();
  std::vector<float> norm_step(norms.size());
  for (size_t j = 0; j < norms.size(); ++j) norm_step[j] = rms(student.tensors[norms[j]].data);

  DistillReport rep;
  rep.kl_before = rep.kl_after = held_back_kl();
  std::vector<TensorState> best = st;
  std::vector<std::vector<float>> best_norms, best_latent = latent;
  for (size_t j : norms) best_norms.push_back(student.tensors[j].data);
  std::vector<size_t> order(n_train);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> draw(n_min, total);
  const uint32_t per_step = std::max<uint32_t>(1, opt.stories_per_step);
  double lr = opt.lr;
  uint32_t cuts = 0;
  uint64_t step = 0;
  for (uint32_t epoch = 1; epoch <= opt.max_epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t s0 = 0; s0 < n_train; s0 += per_step) {
      const size_t cnt = std::min<size_t>(per_step, n_train - s0);
      const uint32_t prefix = draw(rng);
      set_prefix(prefix);
      std::vector<std::vector<std::vector<float>>> g(cnt);
      parallel_for(cnt, opt.threads, [&](size_t k) {
        const size_t si = order[s0 + k];
        kl_loss_and_gradients(student, sequences[si], teacher_logp[si], &g[k]);
      });
      size_t positions = 0;
      for (size_t k = 0; k < cnt; ++k) positions += sequences[order[s0 + k]].size();
      auto summed = [&](size_t ti) {  // mean gradient of tensor ti over the step's positions
        std::vector<float> s = g[0][ti];
        for (size_t k = 1; k < cnt; ++k)
          for (size_t e = 0; e < s.size(); ++e) s[e] += g[k][ti][e];
        for (float& x : s) x /= float(positions);
        return s;
      };
      ++step;
      const float lrf = float(lr);
      for (size_t l = 0; l < L; ++l) {
        const uint32_t n = depth_at[prefix][l];
        std::vector<BlockParams> gp = zero_like(st[l].p);
        backward(st[l], stacked[l].in_scale, n, summed(stacked[l].tensor), &gp);
        for (uint32_t b = 0; b < n; ++b) {
          BlockParams& p = st[l].p[b];
          if (p.kind == kBitStackKindLowRank) {
            adam_update(p.u.data(), gp[b].u.data(), nullptr, p.u.size(), lrf * p.u_step, step, m1[l][b].u.data(), m2[l][b].u.data());
            adam_update(p.v.data(), gp[b].v.data(), nullptr, p.v.size(), lrf * p.v_step, step, m1[l][b].v.data(), m2[l][b].v.data());
          } else {
            adam_update(&p.scale, &gp[b].scale, nullptr, 1, lrf * p.s_step, step, &m1[l][b].scale, &m2[l][b].scale);
          }
        }
      }
      for (size_t j = 0; j < norms.size(); ++j) {
        std::vector<float> gn = summed(norms[j]);
        adam_update(student.tensors[norms[j]].data.data(), gn.data(), nullptr, gn.size(), lrf * norm_step[j], step,
                    n1[j].data(), n2[j].data());
      }
      for (size_t j = 0; j < grid.size(); ++j) {  // straight through the rounding to the grid
        std::vector<float> ge = summed(grid[j].tensor);
        adam_update(latent[j].data(), ge.data(), nullptr, ge.size(), lrf * grid_step[j], step, e1[j].data(),
                    e2[j].data());
        lowbit_round_to_grid(*grid[j].codes, latent[j], &student.tensors[grid[j].tensor].data, nullptr);
      }
    }
    const double kl = held_back_kl();
    rep.epochs_run = epoch;
    if (opt.log) {
      char line[160];
      std::snprintf(line, sizeof line, "distill: epoch %u, step %.1e, held-back KL over 4 budgets %.5f (start %.5f)",
                    epoch, lr, kl, rep.kl_before);
      opt.log(line);
    }
    if (kl < rep.kl_after) {
      rep.kl_after = kl;
      rep.best_epoch = epoch;
      best = st;
      for (size_t j = 0; j < norms.size(); ++j) best_norms[j] = student.tensors[norms[j]].data;
      best_latent = latent;
      continue;
    }
    if (++cuts > opt.step_cuts) break;
    lr /= 3;
    st = best;
    for (size_t j = 0; j < norms.size(); ++j) student.tensors[norms[j]].data = best_norms[j];
    latent = best_latent;
    for (size_t j = 0; j < grid.size(); ++j) lowbit_round_to_grid(*grid[j].codes, latent[j], &student.tensors[grid[j].tensor].data, nullptr);
    zero_moments();
    step = 0;
  }
  for (size_t j = 0; j < norms.size(); ++j) student.tensors[norms[j]].data = best_norms[j];
  for (size_t j = 0; j < grid.size(); ++j)
    lowbit_round_to_grid(*grid[j].codes, best_latent[j], &student.tensors[grid[j].tensor].data, &grid[j].codes->codes);
  // Back into the blocks, as fp16; copies of block 0's factors follow it.
  for (size_t l = 0; l < L; ++l) {
    std::vector<BitStackBlock>& blocks = *stacked[l].blocks;
    for (size_t b = 0; b < blocks.size(); ++b) {
      const BlockParams& p = best[l].p[b];
      const BlockParams& src = p.kind == kBitStackKindLowRank ? p : best[l].p[0];
      for (size_t i = 0; i < src.u.size(); ++i) blocks[b].u[i] = float_to_half(src.u[i]);
      for (size_t i = 0; i < src.v.size(); ++i) blocks[b].v[i] = float_to_half(src.v[i]);
      if (p.kind != kBitStackKindLowRank) blocks[b].scale = p.scale;
    }
  }
  set_prefix(total);
  return rep;
}

}  // namespace stk::host

#include "tools/distill.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <stdexcept>
#include <thread>

#include "runtime/weights.h"
#include "tools/handles.h"
#include "tools/memory_model.h"

namespace stk::host {
namespace {

// Eight partial sums so the compiler can vectorise without reassociating.
float dot(const float* a, const float* b, uint32_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (uint32_t k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) t += a[i] * b[i];
  return t;
}

void axpy(float a, const float* x, float* y, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Y (T x rows) = X (T x cols) W^T.
void matmul(const float* W, uint32_t rows, uint32_t cols, const float* X, uint32_t T, float* Y) {
  for (uint32_t t = 0; t < T; ++t)
    for (uint32_t r = 0; r < rows; ++r) Y[size_t(t) * rows + r] = dot(W + size_t(r) * cols, X + size_t(t) * cols, cols);
}

// dX += dY W, dW += dY^T X.
void matmul_backward(const float* W, uint32_t rows, uint32_t cols, const float* X, uint32_t T, const float* dY,
                     float* dX, float* dW) {
  for (uint32_t t = 0; t < T; ++t) {
    const float* dy = dY + size_t(t) * rows;
    const float* x = X + size_t(t) * cols;
    float* dx = dX + size_t(t) * cols;
    for (uint32_t r = 0; r < rows; ++r) {
      if (dy[r] == 0.0f) continue;
      axpy(dy[r], W + size_t(r) * cols, dx, cols);
      axpy(dy[r], x, dW + size_t(r) * cols, cols);
    }
  }
}

// As runtime/forward.cpp: y = g * (r * x), r = 1 / sqrt(mean(x^2) + eps).
void rmsnorm(const float* x, const float* g, uint32_t n, float eps, float* y, float* r_out) {
  float ss = 0.0f;
  for (uint32_t j = 0; j < n; ++j) ss += x[j] * x[j];
  const float r = 1.0f / sqrtf(ss / float(n) + eps);
  for (uint32_t j = 0; j < n; ++j) y[j] = g[j] * (r * x[j]);
  *r_out = r;
}

// The norm above over T rows of n; r gets each row's 1 / rms.
void rmsnorm_rows(const std::vector<float>& x, const float* g, uint32_t T, uint32_t n, float eps,
                  std::vector<float>* y, std::vector<float>* r) {
  y->resize(size_t(T) * n);
  r->resize(T);
  for (uint32_t t = 0; t < T; ++t) rmsnorm(&x[size_t(t) * n], g, n, eps, &(*y)[size_t(t) * n], &(*r)[t]);
}

// dx += d/dx, dg += d/dg of the norm above, given dy.
void rmsnorm_backward(const float* x, const float* g, float r, uint32_t n, const float* dy, float* dx, float* dg) {
  float s = 0.0f;
  for (uint32_t j = 0; j < n; ++j) {
    dg[j] += dy[j] * r * x[j];
    s += g[j] * dy[j] * x[j];
  }
  const float c = r * r * r * s / float(n);
  for (uint32_t j = 0; j < n; ++j) dx[j] += r * g[j] * dy[j] - c * x[j];
}

float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

struct Dims {
  uint32_t dim, hidden, heads, kv_heads, hs, q_dim, kv_dim, vocab, layers;
  float eps, theta;
  explicit Dims(const HostConfig& c)
      : dim(c.dim), hidden(c.hidden_dim), heads(c.n_heads), kv_heads(c.n_kv_heads), hs(c.dim / c.n_heads),
        q_dim(c.dim), kv_dim(c.n_kv_heads * (c.dim / c.n_heads)), vocab(c.vocab_size), layers(c.n_layers),
        eps(c.norm_eps), theta(c.rope_theta) {}
};

// Indices into model.tensors of one layer's weights.
struct LayerIdx {
  size_t attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3;
};

struct ModelIdx {
  size_t emb, final_norm, cls;
  std::vector<LayerIdx> layers;
};

size_t index_of(const HostModel& m, TensorRole role, uint32_t layer) {
  for (size_t i = 0; i < m.tensors.size(); ++i)
    if (m.tensors[i].role == role && m.tensors[i].layer == layer) return i;
  throw std::invalid_argument("distill: the model has no " + tensor_name(role, layer));
}

ModelIdx model_index(const HostModel& m) {
  ModelIdx ix;
  ix.emb = index_of(m, TensorRole::TokenEmbedding, kNoLayer);
  ix.final_norm = index_of(m, TensorRole::FinalNorm, kNoLayer);
  ix.cls = m.config.shared_classifier ? ix.emb : index_of(m, TensorRole::Classifier, kNoLayer);
  for (uint32_t l = 0; l < m.config.n_layers; ++l) {
    ix.layers.push_back({index_of(m, TensorRole::AttnNorm, l), index_of(m, TensorRole::Wq, l),
                         index_of(m, TensorRole::Wk, l), index_of(m, TensorRole::Wv, l),
                         index_of(m, TensorRole::Wo, l), index_of(m, TensorRole::FfnNorm, l),
                         index_of(m, TensorRole::W1, l), index_of(m, TensorRole::W2, l),
                         index_of(m, TensorRole::W3, l)});
  }
  return ix;
}

// What the backward pass needs of one layer's forward pass.
struct LayerTape {
  std::vector<float> x, r1, xn1, q, k, v, att, ao, x_mid, r2, xn2, a, b, hb;
};

struct Tape {
  uint32_t T = 0;
  std::vector<float> rope;  // T x hs: cos, sin interleaved
  std::vector<LayerTape> layers;
  std::vector<float> x_last, rf, xnf, logits;
};

void rope_rotate(float* v, uint32_t size, const float* table, uint32_t hs, bool inverse) {
  for (uint32_t i = 0; i < size; i += 2) {
    const float c = table[i % hs], s = inverse ? -table[i % hs + 1] : table[i % hs + 1];
    const float v0 = v[i], v1 = v[i + 1];
    v[i] = v0 * c - v1 * s;
    v[i + 1] = v0 * s + v1 * c;
  }
}

void forward(const HostModel& m, const ModelIdx& ix, const std::vector<int32_t>& tokens, Tape* tp) {
  const Dims d(m.config);
  const uint32_t T = uint32_t(tokens.size());
  Tape& tape = *tp;
  tape.T = T;
  tape.rope.resize(size_t(T) * d.hs);
  for (uint32_t t = 0; t < T; ++t)
    for (uint32_t i = 0; i < d.hs; i += 2) {
      const float freq = 1.0f / powf(d.theta, float(i) / float(d.hs));
      const float val = float(t) * freq;
      tape.rope[size_t(t) * d.hs + i] = cosf(val);
      tape.rope[size_t(t) * d.hs + i + 1] = sinf(val);
    }
  std::vector<float> x(size_t(T) * d.dim), tmp(size_t(T) * d.dim);
  const std::vector<float>& emb = m.tensors[ix.emb].data;
  for (uint32_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || uint32_t(tokens[t]) >= d.vocab) throw std::invalid_argument("distill: token out of range");
    std::copy_n(emb.data() + size_t(tokens[t]) * d.dim, d.dim, x.data() + size_t(t) * d.dim);
  }
  tape.layers.resize(d.layers);
  const float inv_sqrt_hs = 1.0f / sqrtf(float(d.hs));
  for (uint32_t l = 0; l < d.layers; ++l) {
    const LayerIdx& li = ix.layers[l];
    LayerTape& L = tape.layers[l];
    L.x = x;
    rmsnorm_rows(x, m.tensors[li.attn_norm].data.data(), T, d.dim, d.eps, &L.xn1, &L.r1);
    L.q.resize(size_t(T) * d.q_dim);
    L.k.resize(size_t(T) * d.kv_dim);
    L.v.resize(size_t(T) * d.kv_dim);
    matmul(m.tensors[li.wq].data.data(), d.q_dim, d.dim, L.xn1.data(), T, L.q.data());
    matmul(m.tensors[li.wk].data.data(), d.kv_dim, d.dim, L.xn1.data(), T, L.k.data());
    matmul(m.tensors[li.wv].data.data(), d.kv_dim, d.dim, L.xn1.data(), T, L.v.data());
    for (uint32_t t = 0; t < T; ++t) {
      rope_rotate(&L.q[size_t(t) * d.q_dim], d.q_dim, &tape.rope[size_t(t) * d.hs], d.hs, false);
      rope_rotate(&L.k[size_t(t) * d.kv_dim], d.kv_dim, &tape.rope[size_t(t) * d.hs], d.hs, false);
    }
    L.att.assign(size_t(d.heads) * T * T, 0.0f);
    L.ao.assign(size_t(T) * d.q_dim, 0.0f);
    for (uint32_t h = 0; h < d.heads; ++h) {
      const uint32_t kvh = h / (d.heads / d.kv_heads);
      for (uint32_t i = 0; i < T; ++i) {
        float* p = &L.att[(size_t(h) * T + i) * T];
        const float* q = &L.q[size_t(i) * d.q_dim + size_t(h) * d.hs];
        float mx = -INFINITY;
        for (uint32_t j = 0; j <= i; ++j) {
          p[j] = dot(q, &L.k[size_t(j) * d.kv_dim + size_t(kvh) * d.hs], d.hs) * inv_sqrt_hs;
          mx = std::max(mx, p[j]);
        }
        float sum = 0.0f;
        for (uint32_t j = 0; j <= i; ++j) sum += (p[j] = expf(p[j] - mx));
        float* o = &L.ao[size_t(i) * d.q_dim + size_t(h) * d.hs];
        for (uint32_t j = 0; j <= i; ++j) {
          p[j] /= sum;
          axpy(p[j], &L.v[size_t(j) * d.kv_dim + size_t(kvh) * d.hs], o, d.hs);
        }
      }
    }
    matmul(m.tensors[li.wo].data.data(), d.dim, d.q_dim, L.ao.data(), T, tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
    L.x_mid = x;
    rmsnorm_rows(x, m.tensors[li.ffn_norm].data.data(), T, d.dim, d.eps, &L.xn2, &L.r2);
    L.a.resize(size_t(T) * d.hidden);
    L.b.resize(size_t(T) * d.hidden);
    L.hb.resize(size_t(T) * d.hidden);
    matmul(m.tensors[li.w1].data.data(), d.hidden, d.dim, L.xn2.data(), T, L.a.data());
    matmul(m.tensors[li.w3].data.data(), d.hidden, d.dim, L.xn2.data(), T, L.b.data());
    for (size_t i = 0; i < L.hb.size(); ++i) L.hb[i] = L.a[i] * sigmoid(L.a[i]) * L.b[i];
    matmul(m.tensors[li.w2].data.data(), d.dim, d.hidden, L.hb.data(), T, tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
  }
  tape.x_last = x;
  rmsnorm_rows(x, m.tensors[ix.final_norm].data.data(), T, d.dim, d.eps, &tape.xnf, &tape.rf);
  tape.logits.resize(size_t(T) * d.vocab);
  matmul(m.tensors[ix.cls].data.data(), d.vocab, d.dim, tape.xnf.data(), T, tape.logits.data());
}

void log_softmax(const float* z, uint32_t n, float* out) {
  float mx = z[0];
  for (uint32_t i = 1; i < n; ++i) mx = std::max(mx, z[i]);
  double s = 0;
  for (uint32_t i = 0; i < n; ++i) s += std::exp(double(z[i] - mx));
  const float lse = mx + float(std::log(s));
  for (uint32_t i = 0; i < n; ++i) out[i] = z[i] - lse;
}

void backward(const HostModel& m, const ModelIdx& ix, const std::vector<int32_t>& tokens, const Tape& tape,
              std::vector<float> dlogits, std::vector<std::vector<float>>& g) {
  const Dims d(m.config);
  const uint32_t T = tape.T;
  auto W = [&](size_t i) { return m.tensors[i].data.data(); };
  std::vector<float> dxnf(size_t(T) * d.dim, 0.0f), dx(size_t(T) * d.dim, 0.0f);
  matmul_backward(W(ix.cls), d.vocab, d.dim, tape.xnf.data(), T, dlogits.data(), dxnf.data(), g[ix.cls].data());
  for (uint32_t t = 0; t < T; ++t)
    rmsnorm_backward(&tape.x_last[size_t(t) * d.dim], W(ix.final_norm), tape.rf[t], d.dim, &dxnf[size_t(t) * d.dim],
                     &dx[size_t(t) * d.dim], g[ix.final_norm].data());
  const float inv_sqrt_hs = 1.0f / sqrtf(float(d.hs));
  std::vector<float> dhb(size_t(T) * d.hidden), da(size_t(T) * d.hidden), db(size_t(T) * d.hidden);
  std::vector<float> dxn(size_t(T) * d.dim), dao(size_t(T) * d.q_dim), dq(size_t(T) * d.q_dim);
  std::vector<float> dk(size_t(T) * d.kv_dim), dv(size_t(T) * d.kv_dim), dp(T);
  for (uint32_t l = d.layers; l-- > 0;) {
    const LayerIdx& li = ix.layers[l];
    const LayerTape& L = tape.layers[l];
    // x = x_mid + w2 hb
    std::fill(dhb.begin(), dhb.end(), 0.0f);
    matmul_backward(W(li.w2), d.dim, d.hidden, L.hb.data(), T, dx.data(), dhb.data(), g[li.w2].data());
    for (size_t i = 0; i < dhb.size(); ++i) {
      const float s = sigmoid(L.a[i]), silu = L.a[i] * s;
      db[i] = dhb[i] * silu;
      da[i] = dhb[i] * L.b[i] * (s + L.a[i] * s * (1.0f - s));
    }
    std::fill(dxn.begin(), dxn.end(), 0.0f);
    matmul_backward(W(li.w1), d.hidden, d.dim, L.xn2.data(), T, da.data(), dxn.data(), g[li.w1].data());
    matmul_backward(W(li.w3), d.hidden, d.dim, L.xn2.data(), T, db.data(), dxn.data(), g[li.w3].data());
    for (uint32_t t = 0; t < T; ++t)  // dx already holds the residual path's gradient
      rmsnorm_backward(&L.x_mid[size_t(t) * d.dim], W(li.ffn_norm), L.r2[t], d.dim, &dxn[size_t(t) * d.dim],
                       &dx[size_t(t) * d.dim], g[li.ffn_norm].data());
    // x_mid = x + wo ao
    std::fill(dao.begin(), dao.end(), 0.0f);
    matmul_backward(W(li.wo), d.dim, d.q_dim, L.ao.data(), T, dx.data(), dao.data(), g[li.wo].data());
    std::fill(dq.begin(), dq.end(), 0.0f);
    std::fill(dk.begin(), dk.end(), 0.0f);
    std::fill(dv.begin(), dv.end(), 0.0f);
    for (uint32_t h = 0; h < d.heads; ++h) {
      const uint32_t kvh = h / (d.heads / d.kv_heads);
      for (uint32_t i = 0; i < T; ++i) {
        const float* p = &L.att[(size_t(h) * T + i) * T];
        const float* go = &dao[size_t(i) * d.q_dim + size_t(h) * d.hs];
        float s = 0.0f;
        for (uint32_t j = 0; j <= i; ++j) {
          dp[j] = dot(go, &L.v[size_t(j) * d.kv_dim + size_t(kvh) * d.hs], d.hs);
          s += p[j] * dp[j];
          axpy(p[j], go, &dv[size_t(j) * d.kv_dim + size_t(kvh) * d.hs], d.hs);
        }
        const float* q = &L.q[size_t(i) * d.q_dim + size_t(h) * d.hs];
        float* gq = &dq[size_t(i) * d.q_dim + size_t(h) * d.hs];
        for (uint32_t j = 0; j <= i; ++j) {
          const float ds = p[j] * (dp[j] - s) * inv_sqrt_hs;
          if (ds == 0.0f) continue;
          axpy(ds, &L.k[size_t(j) * d.kv_dim + size_t(kvh) * d.hs], gq, d.hs);
          axpy(ds, q, &dk[size_t(j) * d.kv_dim + size_t(kvh) * d.hs], d.hs);
        }
      }
    }
    for (uint32_t t = 0; t < T; ++t) {
      rope_rotate(&dq[size_t(t) * d.q_dim], d.q_dim, &tape.rope[size_t(t) * d.hs], d.hs, true);
      rope_rotate(&dk[size_t(t) * d.kv_dim], d.kv_dim, &tape.rope[size_t(t) * d.hs], d.hs, true);
    }
    std::fill(dxn.begin(), dxn.end(), 0.0f);
    matmul_backward(W(li.wq), d.q_dim, d.dim, L.xn1.data(), T, dq.data(), dxn.data(), g[li.wq].data());
    matmul_backward(W(li.wk), d.kv_dim, d.dim, L.xn1.data(), T, dk.data(), dxn.data(), g[li.wk].data());
    matmul_backward(W(li.wv), d.kv_dim, d.dim, L.xn1.data(), T, dv.data(), dxn.data(), g[li.wv].data());
    for (uint32_t t = 0; t < T; ++t)
      rmsnorm_backward(&L.x[size_t(t) * d.dim], W(li.attn_norm), L.r1[t], d.dim, &dxn[size_t(t) * d.dim],
                       &dx[size_t(t) * d.dim], g[li.attn_norm].data());
  }
  float* ge = g[ix.emb].data();
  for (uint32_t t = 0; t < T; ++t) axpy(1.0f, &dx[size_t(t) * d.dim], ge + size_t(tokens[t]) * d.dim, d.dim);
}

// Sum over positions of KL(teacher || model); dlogits (when not null) gets
// its gradient with respect to the logits.
double kl_sum(const Tape& tape, uint32_t vocab, const std::vector<float>& teacher_logp, std::vector<float>* dlogits) {
  std::vector<float> lq(vocab);
  double total = 0;
  if (dlogits) dlogits->resize(tape.logits.size());
  for (uint32_t t = 0; t < tape.T; ++t) {
    log_softmax(&tape.logits[size_t(t) * vocab], vocab, lq.data());
    const float* lp = &teacher_logp[size_t(t) * vocab];
    for (uint32_t i = 0; i < vocab; ++i) {
      const double p = std::exp(double(lp[i]));
      total += p * (double(lp[i]) - lq[i]);
      if (dlogits) (*dlogits)[size_t(t) * vocab + i] = float(std::exp(double(lq[i])) - p);
    }
  }
  return total;
}

}  // namespace

std::vector<std::vector<int32_t>> tokenize_stories(const PackedModel& model, const std::vector<std::string>& stories) {
  return tokenize_stories(MemoryModel(serialize_stk(model)), stories);
}

std::vector<std::vector<int32_t>> tokenize_stories(const MemoryModel& mm, const std::vector<std::string>& stories) {
  const size_t max_len = mm.info().seq_len;
  std::vector<std::vector<int32_t>> out;
  stk_message m{};
  for (const std::string& s : stories) {
    std::vector<int32_t> t(s.size() + 3);
    size_t n = 0;
    check(stk_tokenize(mm.get(), s.data(), s.size(), 1, t.data(), t.size(), &n, &m), m);
    t.resize(std::min(n, max_len));
    if (!t.empty()) out.push_back(std::move(t));
  }
  return out;
}

std::vector<float> dequantized_tensor(const PackedTensor& p) {
  if (p.format == WeightFormat::BitStack) throw std::invalid_argument("distill: " + p.name + " is a BitStack tensor");
  const WeightView w{p.format, p.rows, p.cols, p.data.data(), p.data.size(), {p.params[0], p.params[1], p.params[2], p.params[3]}};
  uint64_t need = 0;
  if (!weight_format_bytes(p.format, p.rows, p.cols, p.params, &need) || need > p.data.size())
    throw std::invalid_argument("distill: " + p.name + " has the wrong size for its format");
  std::vector<float> out(size_t(p.rows) * p.cols);
  for (uint32_t r = 0; r < p.rows; ++r) weight_dequantize_row(w, r, out.data() + size_t(r) * p.cols);
  return out;
}

HostModel dequantized_model(const PackedModel& packed) {
  HostModel out;
  out.config = packed.config;
  for (const PackedTensor& p : packed.tensors)
    out.tensors.push_back(HostTensor{p.name, p.role, p.layer, p.rows, p.cols, dequantized_tensor(p)});
  return out;
}

std::vector<float> model_log_probs(const HostModel& model, const std::vector<int32_t>& tokens) {
  const ModelIdx ix = model_index(model);
  Tape tape;
  forward(model, ix, tokens, &tape);
  const uint32_t vocab = model.config.vocab_size;
  for (uint32_t t = 0; t < tape.T; ++t) log_softmax(&tape.logits[size_t(t) * vocab], vocab, &tape.logits[size_t(t) * vocab]);
  return tape.logits;
}

double kl_loss_and_gradients(const HostModel& student, const std::vector<int32_t>& tokens,
                             const std::vector<float>& teacher_logp, std::vector<std::vector<float>>* grads) {
  const ModelIdx ix = model_index(student);
  if (teacher_logp.size() != tokens.size() * student.config.vocab_size)
    throw std::invalid_argument("distill: teacher log-probabilities do not match the tokens");
  grads->resize(student.tensors.size());
  for (size_t i = 0; i < student.tensors.size(); ++i) (*grads)[i].resize(student.tensors[i].data.size(), 0.0f);
  Tape tape;
  forward(student, ix, tokens, &tape);
  std::vector<float> dlogits;
  const double loss = kl_sum(tape, student.config.vocab_size, teacher_logp, &dlogits);
  backward(student, ix, tokens, tape, std::move(dlogits), *grads);
  return loss;
}

void parallel_for(size_t n, uint32_t threads, const std::function<void(size_t)>& fn) {
  const size_t workers = std::min<size_t>(std::max<uint32_t>(threads, 1), n);
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::thread> pool;
  for (size_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      for (size_t i = w; i < n; i += workers) fn(i);
    });
  for (auto& t : pool) t.join();
}

double kl_loss(const HostModel& student, const std::vector<int32_t>& tokens, const std::vector<float>& teacher_logp) {
  Tape tape;
  forward(student, model_index(student), tokens, &tape);
  return kl_sum(tape, student.config.vocab_size, teacher_logp, nullptr);
}

void adam_update(float* w, const float* g, const uint8_t* mask, size_t n, float lr, uint64_t t, float* m1, float* m2) {
  const float b1 = 0.9f, b2 = 0.999f;
  const float c1 = 1.0f - float(std::pow(b1, double(t))), c2 = 1.0f - float(std::pow(b2, double(t)));
  for (size_t e = 0; e < n; ++e) {
    if (mask && !mask[e]) continue;
    m1[e] = b1 * m1[e] + (1 - b1) * g[e];
    m2[e] = b2 * m2[e] + (1 - b2) * g[e] * g[e];
    w[e] -= lr * (m1[e] / c1) / (std::sqrt(m2[e] / c2) + 1e-12f);
  }
}

namespace {

double mean_kl(const HostModel& model, const std::vector<const std::vector<int32_t>*>& seqs,
               const std::vector<const std::vector<float>*>& teacher, uint32_t threads) {
  std::vector<double> kl(seqs.size());
  size_t positions = 0;
  for (const auto* s : seqs) positions += s->size();
  parallel_for(seqs.size(), threads, [&](size_t i) { kl[i] = kl_loss(model, *seqs[i], *teacher[i]); });
  return positions ? std::accumulate(kl.begin(), kl.end(), 0.0) / double(positions) : 0.0;
}

}  // namespace

DistillReport distill(const HostModel& teacher, HostModel& student, const std::vector<std::vector<uint8_t>>& trainable,
                      const std::vector<std::vector<int32_t>>& sequences, const DistillOptions& opt,
                      const std::vector<Projection>& project) {
  if (!project.empty() && project.size() != student.tensors.size())
    throw std::invalid_argument("distill: one projection per tensor");
  if (trainable.size() != student.tensors.size()) throw std::invalid_argument("distill: one mask per tensor");
  for (size_t i = 0; i < trainable.size(); ++i)
    if (!trainable[i].empty() && trainable[i].size() != student.tensors[i].data.size())
      throw std::invalid_argument("distill: mask size of " + student.tensors[i].name);
  if (sequences.size() < 2) throw std::invalid_argument("distill: needs at least two calibration stories");
  std::vector<std::vector<float>> teacher_logp(sequences.size());
  parallel_for(sequences.size(), opt.threads, [&](size_t i) { teacher_logp[i] = model_log_probs(teacher, sequences[i]); });

  const size_t n_val = std::max<size_t>(1, sequences.size() / 8), n_train = sequences.size() - n_val;
  std::vector<const std::vector<int32_t>*> val_seq;
  std::vector<const std::vector<float>*> val_lp;
  for (size_t i = n_train; i < sequences.size(); ++i) val_seq.push_back(&sequences[i]), val_lp.push_back(&teacher_logp[i]);

  // Adam state, and a step size per tensor proportional to its RMS entry.
  const size_t nt = student.tensors.size();
  std::vector<std::vector<float>> m1(nt), m2(nt);
  std::vector<float> scale(nt, 0.0f);
  for (size_t i = 0; i < nt; ++i) {
    if (trainable[i].empty()) continue;
    m1[i].assign(trainable[i].size(), 0.0f);
    m2[i].assign(trainable[i].size(), 0.0f);
    double ss = 0;
    size_t cnt = 0;
    for (size_t k = 0; k < trainable[i].size(); ++k)
      if (trainable[i][k]) ss += double(student.tensors[i].data[k]) * student.tensors[i].data[k], ++cnt;
    scale[i] = cnt ? float(std::sqrt(ss / double(cnt))) : 0.0f;
  }
  // Latent values of the projected tensors; the student holds their projection.
  std::vector<std::vector<float>> latent(nt);
  auto projected = [&](size_t i) { return !project.empty() && project[i] && !trainable[i].empty(); };
  for (size_t i = 0; i < nt; ++i)
    if (projected(i)) latent[i] = student.tensors[i].data;
  std::vector<std::vector<float>> best(nt), best_latent(nt);
  auto keep_best = [&] {
    for (size_t i = 0; i < nt; ++i)
      if (!trainable[i].empty()) best[i] = student.tensors[i].data, best_latent[i] = latent[i];
  };

  DistillReport rep;
  rep.kl_before = rep.kl_after = mean_kl(student, val_seq, val_lp, opt.threads);
  keep_best();
  double lr_now = opt.lr;
  uint32_t cuts = 0;
  std::vector<size_t> order(n_train);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(1);
  const uint32_t per_step = std::max<uint32_t>(1, opt.stories_per_step);
  uint64_t step = 0;
  for (uint32_t epoch = 1; epoch <= opt.max_epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t s0 = 0; s0 < n_train; s0 += per_step) {
      const size_t cnt = std::min<size_t>(per_step, n_train - s0);
      // One gradient buffer per story, summed in story order: the result does
      // not depend on the thread count.
      std::vector<std::vector<std::vector<float>>> g(cnt);
      std::vector<double> loss(cnt);
      parallel_for(cnt, opt.threads, [&](size_t k) {
        const size_t si = order[s0 + k];
        loss[k] = kl_loss_and_gradients(student, sequences[si], teacher_logp[si], &g[k]);
      });
      size_t positions = 0;
      for (size_t k = 0; k < cnt; ++k) positions += sequences[order[s0 + k]].size();
      ++step;
      for (size_t i = 0; i < nt; ++i) {
        if (trainable[i].empty()) continue;
        std::vector<float>& gr = g[0][i];
        for (size_t k = 1; k < cnt; ++k)
          for (size_t e = 0; e < gr.size(); ++e) gr[e] += g[k][i][e];
        for (float& x : gr) x /= float(positions);
        float* w = projected(i) ? latent[i].data() : student.tensors[i].data.data();
        adam_update(w, gr.data(), trainable[i].data(), gr.size(), float(lr_now) * scale[i], step, m1[i].data(),
                    m2[i].data());
        if (projected(i)) project[i](latent[i], &student.tensors[i].data);
      }
    }
    const double kl = mean_kl(student, val_seq, val_lp, opt.threads);
    rep.epochs_run = epoch;
    if (opt.log) {
      char line[160];
      std::snprintf(line, sizeof line, "distill: epoch %u, step %.1e, held-back KL %.5f (start %.5f)", epoch, lr_now,
                    kl, rep.kl_before);
      opt.log(line);
    }
    if (kl < rep.kl_after) {
      rep.kl_after = kl;
      rep.best_epoch = epoch;
      keep_best();
      continue;
    }
    // No better on held-back text: back to the best weights, smaller steps.
    if (++cuts > opt.step_cuts) break;
    lr_now /= 3;
    for (size_t i = 0; i < nt; ++i) {
      if (trainable[i].empty()) continue;
      student.tensors[i].data = best[i];
      latent[i] = best_latent[i];
      std::fill(m1[i].begin(), m1[i].end(), 0.0f);
      std::fill(m2[i].begin(), m2[i].end(), 0.0f);
    }
    step = 0;
  }
  for (size_t i = 0; i < nt; ++i)
    if (!trainable[i].empty()) student.tensors[i].data = best[i];
  return rep;
}

}  // namespace stk::host

// The Llama forward pass over a batch of tokens, as llama2.c computes it:
// RMSNorm, rotary embeddings on q and k, grouped-query attention over the KV
// cache, SwiGLU MLP, final norm and classifier. The scalar arithmetic (norm,
// rope, softmax, silu) follows run.c's order so f32 logits match it closely.
#include <cmath>
#include <cstring>

#include "runtime/dot.h"
#include "runtime/kernels/matmul.h"
#include "runtime/session.h"
#include "runtime/widest_isa.h"

namespace stk {
namespace {

// A few matrix products that read the same input, run as one parallel job so
// the threads meet once instead of once per matrix.
struct MatmulOp {
  const WeightView* w;
  TensorRole role;
  float* y;
  size_t ldy;
  MatmulFn fn;  // filled by run_matmuls
};
struct MatmulJob {
  MatmulOp ops[3];
  uint32_t n_ops;
  Activations act;
  uint32_t rows_per_chunk;
  uint32_t chunk_start[4];  // first chunk of each op, then the total
  // SwiGLU: ops[0] (gate, w1) and ops[1] (up, w3) have the same rows and a
  // chunk computes both for its rows, then gate = silu(gate) * up there, so
  // the element-wise step runs in parallel with no extra job.
  bool swiglu;
};

// Rows [r0, r1) of the gate and up products, then SiLU(gate) * up on them.
void swiglu_rows(const MatmulJob& j, uint32_t r0, uint32_t r1) {
  const MatmulOp& g = j.ops[0];
  const MatmulOp& u = j.ops[1];
  g.fn(*g.w, j.act, g.y, g.ldy, r0, r1);
  u.fn(*u.w, j.act, u.y, u.ldy, r0, r1);
  for (uint32_t t = 0; t < j.act.n; ++t) {
    float* gt = g.y + size_t(t) * g.ldy;
    const float* ut = u.y + size_t(t) * u.ldy;
    for (uint32_t r = r0; r < r1; ++r) {
      float v = gt[r];
      v *= (1.0f / (1.0f + expf(-v)));  // SiLU
      gt[r] = v * ut[r];
    }
  }
}

void matmul_chunk(void* ctx, uint32_t chunk, uint32_t /*worker*/) {
  const MatmulJob& j = *static_cast<const MatmulJob*>(ctx);
  if (j.swiglu) {
    const uint32_t r0 = chunk * j.rows_per_chunk, rows = j.ops[0].w->rows;
    swiglu_rows(j, r0, r0 + j.rows_per_chunk < rows ? r0 + j.rows_per_chunk : rows);
    return;
  }
  uint32_t k = 0;
  while (chunk >= j.chunk_start[k + 1]) ++k;
  const MatmulOp& op = j.ops[k];
  uint32_t r0 = (chunk - j.chunk_start[k]) * j.rows_per_chunk;
  uint32_t r1 = r0 + j.rows_per_chunk < op.w->rows ? r0 + j.rows_per_chunk : op.w->rows;
  op.fn(*op.w, j.act, op.y, op.ldy, r0, r1);
}

// Work below this many multiply-adds runs on the calling thread: waking a
// worker costs more than it saves.
constexpr uint64_t kParallelMinMacs = 32 * 1024;
// Chunks per thread of a parallel product: more even out threads that run at
// different speeds (or lose their core for a while), each costs a claim and
// the kernel's per-call setup. Each thread works through its own contiguous
// run of chunks before helping the others (thread_pool.h); with that, 8 per
// thread decoded the stories110M shape with 2 threads at 364-400 (Q8),
// 457-513 (Q4) and 487-558 tok/s (2:4-q4), against 262-324, 347-399 and
// 362-418 when a shared counter dealt the chunks out alternately (three
// alternating runs of stk bench); 32 per thread fell in between. Earlier,
// with the shared counter, largest-first chunks (a quarter of what is left)
// were faster on an idle machine but kept only 30-36% of that speed with a
// busy process on one of the 2 cores, against 39-44% with these.
constexpr uint32_t kChunksPerThread = 8;
// BitStack kernels prepare their activations (v ⊙ x per block and rank:
// int8 steps, or the VBMI kernel's lookup tables) for the whole row width in
// every call, so each chunk repeats that work. With the vpdpbusd kernel two
// chunks per thread decoded the stories110M shape at the Q4 size about 1.5x
// faster with 2 threads than eight (60-77 -> 100-110 tok/s). The VBMI
// kernel's tables cost as much as the lookups of 100-200 rows, and one chunk
// per thread decoded faster again (2 threads, decode only, three alternating
// runs: 250-315 against 228-282 tok/s), without losing more of its speed
// when another process takes a core (stk bench --contend: 112-117 against
// 99-112 tok/s).
constexpr uint32_t kBitStackChunksPerThread = 1;

// Symmetric int8 copy of the activations, groups of 32 along the row, for
// kernels that multiply in integers. Made once per product, shared by all ops.
// It runs on the calling thread, so it is written for the compiler to
// vectorize: rounding to nearest even by adding and subtracting 1.5 * 2^23
// (exactly lrintf for |v| <= 2^22; here |v| <= 127 and a bit), and the max
// as a shallow tree.
void quantize_activations(Session* s, Activations* a, uint32_t cols) {
  const uint32_t groups = (cols + 31) / 32;
  const float kRound = 12582912.0f;
  a->q8 = s->act_q8;
  a->q8_scales = s->act_q8_scales;
  a->ldq = s->act_q8_ld;
  for (uint32_t t = 0; t < a->n; ++t) {
    const float* x = a->x + size_t(t) * a->ldx;
    int8_t* q = s->act_q8 + size_t(t) * s->act_q8_ld;
    float* sc = s->act_q8_scales + size_t(t) * groups;
    for (uint32_t g = 0; g < groups; ++g) {
      const uint32_t c0 = g * 32, c1 = c0 + 32 < cols ? c0 + 32 : cols;
      float amax = 0.0f;
      if (c1 - c0 == 32) {
        const float* p = x + c0;
        for (uint32_t i = 0; i < 8; ++i) {
          const float v0 = fabsf(p[i]), v1 = fabsf(p[i + 8]), v2 = fabsf(p[i + 16]), v3 = fabsf(p[i + 24]);
          const float m01 = v0 > v1 ? v0 : v1, m23 = v2 > v3 ? v2 : v3, m = m01 > m23 ? m01 : m23;
          amax = m > amax ? m : amax;
        }
      } else {
        for (uint32_t c = c0; c < c1; ++c) amax = fabsf(x[c]) > amax ? fabsf(x[c]) : amax;
      }
      const float scale = amax / 127.0f;
      const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
      for (uint32_t c = c0; c < c1; ++c) q[c] = int8_t(int32_t((x[c] * inv + kRound) - kRound));
      for (uint32_t c = c1; c < c0 + 32 && c < s->act_q8_ld; ++c) q[c] = 0;  // zero the padding of a short group
      sc[g] = scale;
    }
  }
}

void run_matmuls(Session* s, uint32_t layer, MatmulJob* j) {
  const uint32_t cols = j->ops[0].w->cols;
  bool want_q8 = false;
  uint64_t macs = 0;
  uint32_t total_rows = 0;
  for (uint32_t k = 0; k < j->n_ops; ++k) {
    MatmulOp& op = j->ops[k];
    op.fn = s->kernels->get(op.w->format);
    want_q8 |= s->kernels->wants_q8_activations[uint32_t(op.w->format)];
    macs += uint64_t(op.w->rows) * op.w->cols * j->act.n;
    total_rows += op.w->rows;
    if (s->observer != nullptr) s->observer(s->observer_user, layer, op.role, j->act.x, j->act.ldx, j->act.n, cols);
  }
  if (want_q8) quantize_activations(s, &j->act, cols);
  if (s->pool.n_threads == 1 || macs < kParallelMinMacs) {
    if (j->swiglu) {
      swiglu_rows(*j, 0, j->ops[0].w->rows);
      return;
    }
    for (uint32_t k = 0; k < j->n_ops; ++k) {
      const MatmulOp& op = j->ops[k];
      op.fn(*op.w, j->act, op.y, op.ldy, 0, op.w->rows);
    }
    return;
  }
  // About kChunksPerThread chunks per thread over all ops, in multiples of 16
  // rows (a SwiGLU chunk does its rows of both products).
  const uint32_t units = j->swiglu ? j->ops[0].w->rows : total_rows;
  const uint32_t chunks_per_thread =
      j->ops[0].w->format == WeightFormat::BitStack ? kBitStackChunksPerThread : kChunksPerThread;
  uint32_t per = units / (chunks_per_thread * s->pool.n_threads);
  per = per < 16 ? 16 : (per + 15) / 16 * 16;
  j->rows_per_chunk = per;
  if (j->swiglu) {  // chunks over the gate's rows, each doing both products
    thread_pool_run(&s->pool, matmul_chunk, j, (j->ops[0].w->rows + per - 1) / per);
    return;
  }
  j->chunk_start[0] = 0;
  for (uint32_t k = 0; k < j->n_ops; ++k) {
    j->chunk_start[k + 1] = j->chunk_start[k] + (j->ops[k].w->rows + per - 1) / per;
  }
  for (uint32_t k = j->n_ops + 1; k < 4; ++k) j->chunk_start[k] = j->chunk_start[j->n_ops];
  thread_pool_run(&s->pool, matmul_chunk, j, j->chunk_start[j->n_ops]);
}

void matmul(Session* s, uint32_t layer, TensorRole role, const WeightView& w, const float* x, size_t ldx,
            uint32_t n, float* y, size_t ldy) {
  MatmulJob j{};
  j.ops[0] = {&w, role, y, ldy, nullptr};
  j.n_ops = 1;
  j.act = Activations{x, ldx, n, nullptr, nullptr, 0};
  run_matmuls(s, layer, &j);
}

void rmsnorm(float* o, const float* x, const float* weight, uint32_t size, float eps) {
  float ss = 0.0f;  // run.c's order (a few thousand adds per token: not worth lanes)
  for (uint32_t j = 0; j < size; ++j) ss += x[j] * x[j];
  ss /= float(size);
  ss += eps;
  ss = 1.0f / sqrtf(ss);
  for (uint32_t j = 0; j < size; ++j) o[j] = weight[j] * (ss * x[j]);
}

// cos/sin of every frequency at position `pos`, interleaved.
void rope_table(float* out, uint32_t pos, uint32_t head_size, float theta) {
  for (uint32_t i = 0; i < head_size; i += 2) {
    float freq = 1.0f / powf(theta, float(i) / float(head_size));
    float val = float(pos) * freq;
    out[i] = cosf(val);
    out[i + 1] = sinf(val);
  }
}

void rope_apply(float* v, uint32_t size, const float* table, uint32_t head_size) {
  for (uint32_t i = 0; i < size; i += 2) {
    const float fcr = table[i % head_size], fci = table[i % head_size + 1];
    float v0 = v[i], v1 = v[i + 1];
    v[i] = v0 * fcr - v1 * fci;
    v[i + 1] = v0 * fci + v1 * fcr;
  }
}

// Where (layer, kv head)'s run of positions starts in key_cache and
// value_cache (session.h: [layers][kv_heads][ctx][head_size]).
size_t kv_head_offset(const Session* s, uint32_t layer, uint32_t kv_head) {
  const ModelConfig& c = s->model->config;
  return (size_t(layer) * c.n_kv_heads + kv_head) * s->ctx_len * c.head_size;
}

struct AttentionJob {
  Session* s;
  uint32_t layer, n;
};

// One (token, head) pair: scores against every cached position up to the
// token's own, softmax, weighted sum of values.
STK_WIDEST_ISA void attention_chunk(void* ctx, uint32_t chunk, uint32_t worker) {
  const AttentionJob& j = *static_cast<const AttentionJob*>(ctx);
  Session* s = j.s;
  const ModelConfig& c = s->model->config;
  const uint32_t t = chunk / c.n_heads, h = chunk % c.n_heads;
  const uint32_t hs = c.head_size, q_dim = c.n_heads * hs;
  const uint32_t p = s->pos + t;
  const uint32_t kvh = h / (c.n_heads / c.n_kv_heads);
  const float* qh = s->q + size_t(t) * q_dim + size_t(h) * hs;
  const size_t head_off = kv_head_offset(s, j.layer, kvh);
  const float* kc = s->key_cache + head_off;
  const float* vc = s->value_cache + head_off;
  float* att = s->att + size_t(worker) * s->ctx_len;
  const float sqrt_hs = sqrtf(float(hs));
  float max_val = -INFINITY;
  for (uint32_t i = 0; i <= p; ++i) {
    float score = dot_f32(qh, kc + size_t(i) * hs, hs);
    score /= sqrt_hs;
    att[i] = score;
    if (score > max_val) max_val = score;
  }
  float sum = 0.0f;
  for (uint32_t i = 0; i <= p; ++i) {
    att[i] = expf(att[i] - max_val);
    sum += att[i];
  }
  for (uint32_t i = 0; i <= p; ++i) att[i] /= sum;
  float* out = s->att_out + size_t(t) * q_dim + size_t(h) * hs;
  std::memset(out, 0, hs * sizeof(float));
  for (uint32_t i = 0; i <= p; ++i) {
    const float* v = vc + size_t(i) * hs;
    const float a = att[i];
    for (uint32_t d = 0; d < hs; ++d) out[d] += a * v[d];
  }
}

void forward_batch(Session* s, const int32_t* tokens, uint32_t n, float* logits_out) {
  const Model& m = *s->model;
  const ModelConfig& c = m.config;
  const uint32_t dim = c.dim, hidden = c.hidden_dim, kv_dim = c.kv_dim, hs = c.head_size;
  const uint32_t q_dim = c.n_heads * hs;

  for (uint32_t t = 0; t < n; ++t) {
    weight_dequantize_row(m.embedding, uint32_t(tokens[t]), s->x + size_t(t) * dim);
    rope_table(s->rope + size_t(t) * hs, s->pos + t, hs, c.rope_theta);
  }

  for (uint32_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = s->layers[l];
    for (uint32_t t = 0; t < n; ++t) {
      rmsnorm(s->xb + size_t(t) * dim, s->x + size_t(t) * dim, L.attn_norm, dim, c.norm_eps);
    }
    MatmulJob qkv{};
    qkv.ops[0] = {&L.wq, TensorRole::Wq, s->q, q_dim, nullptr};
    qkv.ops[1] = {&L.wk, TensorRole::Wk, s->k_new, kv_dim, nullptr};
    qkv.ops[2] = {&L.wv, TensorRole::Wv, s->v_new, kv_dim, nullptr};
    qkv.n_ops = 3;
    qkv.act = Activations{s->xb, dim, n, nullptr, nullptr, 0};
    run_matmuls(s, l, &qkv);
    for (uint32_t t = 0; t < n; ++t) {
      const float* table = s->rope + size_t(t) * hs;
      rope_apply(s->q + size_t(t) * q_dim, q_dim, table, hs);
      rope_apply(s->k_new + size_t(t) * kv_dim, kv_dim, table, hs);
      for (uint32_t h = 0; h < c.n_kv_heads; ++h) {
        const size_t dst = kv_head_offset(s, l, h) + size_t(s->pos + t) * hs;
        std::memcpy(s->key_cache + dst, s->k_new + size_t(t) * kv_dim + size_t(h) * hs, hs * sizeof(float));
        std::memcpy(s->value_cache + dst, s->v_new + size_t(t) * kv_dim + size_t(h) * hs, hs * sizeof(float));
      }
    }

    AttentionJob aj{s, l, n};
    const uint32_t pairs = n * c.n_heads;
    uint64_t work = uint64_t(pairs) * (s->pos + n) * hs;
    if (s->pool.n_threads == 1 || work < kParallelMinMacs) {
      for (uint32_t i = 0; i < pairs; ++i) attention_chunk(&aj, i, 0);
    } else {
      thread_pool_run(&s->pool, attention_chunk, &aj, pairs);
    }

    matmul(s, l, TensorRole::Wo, L.wo, s->att_out, q_dim, n, s->xb, dim);
    for (size_t i = 0; i < size_t(n) * dim; ++i) s->x[i] += s->xb[i];

    for (uint32_t t = 0; t < n; ++t) {
      rmsnorm(s->xb + size_t(t) * dim, s->x + size_t(t) * dim, L.ffn_norm, dim, c.norm_eps);
    }
    MatmulJob up{};
    up.ops[0] = {&L.w1, TensorRole::W1, s->hb, hidden, nullptr};
    up.ops[1] = {&L.w3, TensorRole::W3, s->hb2, hidden, nullptr};
    up.n_ops = 2;
    up.act = Activations{s->xb, dim, n, nullptr, nullptr, 0};
    up.swiglu = true;  // hb = silu(hb) * hb2, row by row inside the job
    run_matmuls(s, l, &up);
    matmul(s, l, TensorRole::W2, L.w2, s->hb, hidden, n, s->xb, dim);
    for (size_t i = 0; i < size_t(n) * dim; ++i) s->x[i] += s->xb[i];
  }

  // Only the rows whose logits are wanted go through the final norm and the
  // classifier: all of them for scoring, the last one for generation.
  const uint32_t first = logits_out != nullptr ? 0 : n - 1;
  for (uint32_t t = first; t < n; ++t) {
    rmsnorm(s->x + size_t(t) * dim, s->x + size_t(t) * dim, m.final_norm, dim, c.norm_eps);
  }
  if (logits_out != nullptr) {
    matmul(s, kNoLayer, TensorRole::Classifier, m.classifier, s->x, dim, n, logits_out, c.vocab_size);
    std::memcpy(s->logits, logits_out + size_t(n - 1) * c.vocab_size, c.vocab_size * sizeof(float));
  } else {
    matmul(s, kNoLayer, TensorRole::Classifier, m.classifier, s->x + size_t(n - 1) * dim, dim, 1, s->logits,
           c.vocab_size);
  }
  s->pos += n;
}

}  // namespace

Status session_eval(Session* s, const int32_t* tokens, uint32_t n, float* logits_out, Message* msg) {
  if (n == 0) return fail(msg, Status::InvalidArgument, "no tokens to evaluate");
  if (tokens == nullptr) return fail(msg, Status::InvalidArgument, "tokens is null");
  const uint32_t vocab = s->model->config.vocab_size;
  for (uint32_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || uint32_t(tokens[i]) >= vocab) {
      return fail(msg, Status::InvalidArgument, "token %d at index %u outside the vocabulary (0..%u)", tokens[i], i,
                  vocab - 1);
    }
  }
  if (uint64_t(s->pos) + n > s->ctx_len) {
    return fail(msg, Status::ContextFull, "context full: position %u + %u tokens exceeds the context length %u",
                s->pos, n, s->ctx_len);
  }
  for (uint32_t done = 0; done < n;) {
    uint32_t step = n - done < s->max_batch ? n - done : s->max_batch;
    forward_batch(s, tokens + done, step,
                  logits_out != nullptr ? logits_out + size_t(done) * vocab : nullptr);
    done += step;
  }
  return Status::Ok;
}

}  // namespace stk

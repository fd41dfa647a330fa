#include "runtime/session.h"

#include <cstring>
#include <new>

namespace stk {

Status session_plan(const Model& model, const SessionConfig& cfg, Arena* a, Session** out, Message* msg) {
  const ModelConfig& c = model.config;
  const uint32_t ctx = cfg.context_length == 0 ? c.seq_len : cfg.context_length;
  const uint32_t threads = cfg.n_threads == 0 ? 1 : cfg.n_threads;
  const uint32_t batch = cfg.max_batch == 0 ? kDefaultMaxBatch : cfg.max_batch;
  if (ctx > c.seq_len) {
    return fail(msg, Status::InvalidArgument, "context length %u exceeds the model's %u", ctx, c.seq_len);
  }
  if (threads > kMaxThreads) {
    return fail(msg, Status::InvalidArgument, "thread count %u exceeds the maximum %u", threads, kMaxThreads);
  }
  if (batch > 4096) return fail(msg, Status::InvalidArgument, "max batch %u exceeds 4096", batch);

  Session* s = a->take_array<Session>(1);
  const size_t q_dim = size_t(c.n_heads) * c.head_size;
  const uint64_t cache = uint64_t(c.n_layers) * ctx * c.kv_dim;  // < 2^8 * 2^20 * 2^16
  float* x = a->take_array<float>(uint64_t(batch) * c.dim);
  float* xb = a->take_array<float>(uint64_t(batch) * c.dim);
  float* q = a->take_array<float>(uint64_t(batch) * q_dim);
  float* att_out = a->take_array<float>(uint64_t(batch) * q_dim);
  float* hb = a->take_array<float>(uint64_t(batch) * c.hidden_dim);
  float* hb2 = a->take_array<float>(uint64_t(batch) * c.hidden_dim);
  float* rope = a->take_array<float>(uint64_t(batch) * c.head_size);
  float* att = a->take_array<float>(uint64_t(threads) * ctx);
  float* kc = a->take_array<float>(cache);
  float* vc = a->take_array<float>(cache);
  float* k_new = a->take_array<float>(uint64_t(batch) * c.kv_dim);
  float* v_new = a->take_array<float>(uint64_t(batch) * c.kv_dim);
  float* logits = a->take_array<float>(c.vocab_size);
  ProbIndex* ps = a->take_array<ProbIndex>(c.vocab_size);
  uint32_t widest = c.dim > c.hidden_dim ? c.dim : c.hidden_dim;
  widest = widest > q_dim ? widest : uint32_t(q_dim);
  const size_t act_ld = (widest + 63) / 64 * 64;
  int8_t* act_q8 = a->take_array<int8_t>(uint64_t(batch) * act_ld);
  float* act_q8_scales = a->take_array<float>(uint64_t(batch) * ((widest + 31) / 32));
  // Room to tokenize a prompt before BPE merges shrink it: a prompt of up to
  // about twice the context in bytes.
  const uint32_t prompt_cap = 2 * ctx + 8;
  int32_t* prompt = a->take_array<int32_t>(prompt_cap);
  BlockPool* block_pool = nullptr;
  const KernelSet* kernels = cfg.scalar_kernels ? &kernel_table_scalar() : &kernels_best();
  Status bs = block_pool_plan(model, cfg.max_budget, kernels->bitstack_signs16, a, &block_pool, msg);
  if (bs != Status::Ok) return bs;
  if (a->measuring()) return Status::Ok;
  if (a->overflowed()) {
    return fail(msg, Status::ArenaTooSmall, "arena too small: need %llu bytes, have %zu",
                (unsigned long long)a->used, a->cap);
  }
  new (s) Session{};
  s->model = &model;
  s->ctx_len = ctx;
  s->max_batch = batch;
  s->n_threads = threads;
  s->pos = 0;
  s->x = x;
  s->xb = xb;
  s->q = q;
  s->att_out = att_out;
  s->hb = hb;
  s->hb2 = hb2;
  s->rope = rope;
  s->att = att;
  s->key_cache = kc;
  s->value_cache = vc;
  s->k_new = k_new;
  s->v_new = v_new;
  s->logits = logits;
  s->sampler_scratch = ps;
  s->act_q8 = act_q8;
  s->act_q8_scales = act_q8_scales;
  s->act_q8_ld = act_ld;
  s->kernels = kernels;
  s->observer = nullptr;
  s->observer_user = nullptr;
  sampler_init(&s->sampler, c.vocab_size, 0.0f, 0.0f, 0, ps);
  s->prompt_tokens = prompt;
  s->prompt_capacity = prompt_cap;
  s->block_pool = block_pool;
  s->layers = block_pool != nullptr ? block_pool->layers : model.layers;
  Status st = thread_pool_start(&s->pool, threads, msg);
  if (st != Status::Ok) return st;
  *out = s;
  return Status::Ok;
}

void session_use_kernels(Session* s, const KernelSet* k) {
  s->kernels = k;
  if (s->block_pool != nullptr) block_pool_use_signs16(s->block_pool, k->bitstack_signs16);
}

void session_stop(Session* s) {
  if (s != nullptr) thread_pool_stop(&s->pool);
}

}  // namespace stk

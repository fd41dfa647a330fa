// A session: one generation context (KV cache, activations, scratch, worker
// threads), every byte of it inside the caller's arena.
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/arena.h"
#include "runtime/block_pool.h"
#include "runtime/kernels/matmul.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/status.h"
#include "runtime/thread_pool.h"

namespace stk {

// Called before each matrix product with its input rows (n rows of `cols`
// floats, row stride ldx). layer is kNoLayer for the classifier.
using ActivationObserver = void (*)(void* user, uint32_t layer, TensorRole role, const float* x, size_t ldx,
                                    uint32_t n, uint32_t cols);

struct SessionConfig {
  uint32_t context_length;  // positions; 0 = the model's seq_len
  uint32_t n_threads;       // 0 = 1
  uint32_t max_batch;       // tokens per eval call; 0 = kDefaultMaxBatch
  uint64_t max_budget;      // BitStack: largest weight budget (bytes) the block pool holds; 0 = full
  bool scalar_kernels;      // portable kernels: the same arithmetic on every target
};
constexpr uint32_t kDefaultMaxBatch = 16;

struct Session {
  const Model* model;
  uint32_t ctx_len, max_batch, n_threads;
  uint32_t pos;  // next position to fill

  // Activations for up to max_batch tokens, row t at [t * width].
  float* x;    // residual stream [B][dim]
  float* xb;   // normed input [B][dim]
  float* q;    // queries, then attention output [B][q_dim]
  float* att_out;  // [B][q_dim]
  float* hb;   // [B][hidden]
  float* hb2;  // [B][hidden]
  float* rope;  // [B][head_size] interleaved cos, sin per frequency
  float* att;   // per worker scores [n_threads][ctx_len]
  // Head-major, so that the attention of one head reads one contiguous run
  // of positions (a stride of kv_dim floats between positions missed the
  // hardware prefetcher on every row and made attention latency-bound).
  float* key_cache;    // [layers][kv_heads][ctx][head_size]
  float* value_cache;  // [layers][kv_heads][ctx][head_size]
  float* k_new;        // [B][kv_dim] this batch's keys, before they go into the cache
  float* v_new;        // [B][kv_dim] and values
  float* logits;       // [vocab] of the last evaluated token
  ProbIndex* sampler_scratch;  // [vocab]
  Sampler sampler;
  int8_t* act_q8;        // [B][act_q8_ld] int8 activations for integer kernels
  float* act_q8_scales;  // [B][ceil(max_width/32)]
  size_t act_q8_ld;
  const KernelSet* kernels;  // chosen at init; tests and the bench swap sets with session_use_kernels
  // Calibration hook (host tools): sees the input of every matrix product.
  ActivationObserver observer;
  void* observer_user;
  int32_t* prompt_tokens;      // [prompt_capacity] for stk_generate
  uint32_t prompt_capacity;
  ThreadPool pool;
  // The layers the forward pass reads: the model's own, or for a BitStack
  // model the block pool's copy whose BitStack views see resident blocks.
  const LayerWeights* layers;
  BlockPool* block_pool;  // null unless the model has BitStack tensors
};

// Lays out a session in `arena` (measuring when arena.base is null). On
// success with real memory, *out points into the arena. Threads are started.
Status session_plan(const Model& model, const SessionConfig& cfg, Arena* arena, Session** out, Message* msg);
// Switches the session to kernel set k between two evaluations, laying the
// resident BitStack sign planes out as k reads them.
void session_use_kernels(Session* s, const KernelSet* k);
void session_stop(Session* s);

// Runs tokens[0..n) at positions pos..pos+n-1. logits_out (optional) gets
// n x vocab logits, one row per token; s->logits always holds the last row.
Status session_eval(Session* s, const int32_t* tokens, uint32_t n, float* logits_out, Message* msg);

}  // namespace stk

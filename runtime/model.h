// A validated, opened model: hyper-parameters and zero-copy views of every
// tensor inside the file bytes (a mapping, or a caller's buffer in flash).
#pragma once
#include <cstddef>
#include <cstdint>

#include "ports/port.h"
#include "runtime/format.h"
#include "runtime/status.h"
#include "runtime/tokenizer.h"
#include "runtime/weights.h"

namespace stk {

struct ModelConfig {
  uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  uint32_t head_size;  // dim / n_heads
  uint32_t kv_dim;     // n_kv_heads * head_size
  float rope_theta;
  float norm_eps;
  bool shared_classifier;
};

struct LayerWeights {
  const float* attn_norm;
  WeightView wq, wk, wv, wo;
  const float* ffn_norm;
  WeightView w1, w2, w3;
};

// Upper bounds that keep every derived size far from overflow and reject
// absurd headers early; generous for any model a small device can run.
constexpr uint32_t kMaxLayers = 256;
constexpr uint32_t kMaxDim = 1u << 16;
constexpr uint32_t kMaxVocab = 1u << 20;
constexpr uint32_t kMaxSeqLen = 1u << 20;

struct Model {
  ModelConfig config;
  const uint8_t* file;
  size_t file_size;
  port::MappedFile mapping;   // set when the runtime mapped the file itself
  uint8_t* tokenizer_buffer;  // set when the tokenizer was overridden
  TokenizerView tokenizer;
  WeightView embedding;
  const float* final_norm;
  WeightView classifier;      // the embedding itself when shared
  LayerWeights* layers;       // config.n_layers entries, after this struct
  uint32_t tensor_count;
  const uint8_t* tensor_table;  // FileTensor records (read with memcpy)
  uint64_t weight_bytes;        // bytes of all tensors in the file
  struct BitStackIndex* bitstack;  // residual blocks; null unless the model has BitStack tensors
};

// Validates `data` as a .stk file and fills a Model allocated through the
// port. `data` must stay valid (and 64-byte aligned) while the model is open.
// verify_data: check the CRC of every section (all bytes are read once).
// mapping: the port's mapping `data` lives in, if the runtime mapped the file;
// the BitStack block region is then released from it as it is checked.
Status model_open(const uint8_t* data, size_t size, bool verify_data, Model** out, Message* msg,
                  const port::MappedFile* mapping = nullptr);
// Replaces the embedded tokenizer with one parsed from llama2.c tokenizer.bin bytes.
Status model_set_tokenizer(Model* m, const uint8_t* tok_bin, size_t size, Message* msg);
void model_close(Model* m);

// Reads tensor record i (i < tensor_count).
FileTensor model_tensor(const Model& m, uint32_t i);

}  // namespace stk

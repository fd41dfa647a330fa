// The in-memory float model that every host packer step works on.
//
// Host tool code: full C++17 standard library and exceptions are allowed.
// Importers (llama2c_import.h, ...) produce a HostModel; quantizers and the
// .stk writer consume it. Everything is fp32 here, whatever the source file.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/format.h"

namespace stk::host {

struct HostTensor {
  std::string name;        // tensor_name(role, layer)
  stk::TensorRole role;
  uint32_t layer;          // stk::kNoLayer for global tensors
  uint32_t rows, cols;     // rows = output features, cols = input features
  std::vector<float> data; // rows*cols, row-major
};

struct HostConfig {
  uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;  // output projection == tok_embeddings (no `output` tensor)
  float rope_theta = 10000.f;
  float norm_eps = 1e-5f;
};

struct HostModel {
  HostConfig config;
  // Order: tok_embeddings; per layer attn_norm, wq, wk, wv, wo, ffn_norm, w1,
  // w2, w3; norm; output (only when !config.shared_classifier).
  std::vector<HostTensor> tensors;
  // "llama2c-legacy", "llama2c-v1", "llama2c-v2-int8(group N)"
  std::string source_format;

  // nullptr when absent. Globals are looked up with layer == stk::kNoLayer.
  const HostTensor* find(stk::TensorRole role, uint32_t layer) const {
    for (const HostTensor& t : tensors)
      if (t.role == role && t.layer == layer) return &t;
    return nullptr;
  }
  HostTensor* find(stk::TensorRole role, uint32_t layer) {
    return const_cast<HostTensor*>(static_cast<const HostModel*>(this)->find(role, layer));
  }
};

// True for the seven linear layers of a block (q, k, v, o, w1, w2, w3).
inline bool is_linear_role(stk::TensorRole role) {
  switch (role) {
    case stk::TensorRole::Wq:
    case stk::TensorRole::Wk:
    case stk::TensorRole::Wv:
    case stk::TensorRole::Wo:
    case stk::TensorRole::W1:
    case stk::TensorRole::W2:
    case stk::TensorRole::W3:
      return true;
    default:
      return false;
  }
}

// True for the roles that exist once per layer: the linear layers and the two norms.
inline bool is_per_layer_role(stk::TensorRole role) {
  return is_linear_role(role) || role == stk::TensorRole::AttnNorm || role == stk::TensorRole::FfnNorm;
}

// "tok_embeddings", "layers.3.attn_norm", "layers.3.attn.wq" (.wk .wv .wo),
// "layers.3.ffn_norm", "layers.3.ffn.w1" (.w2 .w3), "norm", "output".
// Throws std::invalid_argument for an unknown role, a per-layer role with
// kNoLayer, or a global role with a layer index.
inline std::string tensor_name(stk::TensorRole role, uint32_t layer) {
  const char* suffix = nullptr;
  switch (role) {
    case stk::TensorRole::TokenEmbedding: suffix = "tok_embeddings"; break;
    case stk::TensorRole::FinalNorm: suffix = "norm"; break;
    case stk::TensorRole::Classifier: suffix = "output"; break;
    case stk::TensorRole::AttnNorm: suffix = "attn_norm"; break;
    case stk::TensorRole::Wq: suffix = "attn.wq"; break;
    case stk::TensorRole::Wk: suffix = "attn.wk"; break;
    case stk::TensorRole::Wv: suffix = "attn.wv"; break;
    case stk::TensorRole::Wo: suffix = "attn.wo"; break;
    case stk::TensorRole::FfnNorm: suffix = "ffn_norm"; break;
    case stk::TensorRole::W1: suffix = "ffn.w1"; break;
    case stk::TensorRole::W2: suffix = "ffn.w2"; break;
    case stk::TensorRole::W3: suffix = "ffn.w3"; break;
  }
  if (!suffix)
    throw std::invalid_argument("tensor_name: unknown tensor role " +
                                std::to_string(static_cast<unsigned>(role)));
  if (!is_per_layer_role(role)) {
    if (layer != stk::kNoLayer)
      throw std::invalid_argument(std::string("tensor_name: global tensor ") + suffix +
                                  " given layer " + std::to_string(layer));
    return suffix;
  }
  if (layer == stk::kNoLayer)
    throw std::invalid_argument(std::string("tensor_name: per-layer tensor ") + suffix +
                                " given no layer");
  return "layers." + std::to_string(layer) + "." + suffix;
}

}  // namespace stk::host

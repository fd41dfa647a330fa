#include "runtime/model.h"

#include <cstring>

#include "runtime/bitstack_index.h"
#include "runtime/checked_math.h"
#include "runtime/crc32.h"

namespace stk {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the .stk format is little-endian; so is every target");

Status check_header(const FileHeader& h, size_t size, Message* msg) {
  if (std::memcmp(h.magic, kFileMagic, sizeof h.magic) != 0) {
    return fail(msg, Status::BadFormat, "not a stackrt model (bad magic)");
  }
  if (h.version != kFormatVersion) {
    return fail(msg, Status::Unsupported, "model format version %u, this runtime reads version %u", h.version,
                kFormatVersion);
  }
  if (h.header_bytes != sizeof(FileHeader)) {
    return fail(msg, Status::BadFormat, "header size %u, expected %zu", h.header_bytes, sizeof(FileHeader));
  }
  uint32_t crc = crc32(0, &h, offsetof(FileHeader, header_crc));
  if (crc != h.header_crc) return fail(msg, Status::Checksum, "header checksum mismatch (file corrupted)");
  if (h.file_bytes != size) {
    return fail(msg, Status::BadFormat, "file is %zu bytes, header says %llu (truncated or padded)", size,
                (unsigned long long)h.file_bytes);
  }
  if (h.dim == 0 || h.dim > kMaxDim || h.hidden_dim == 0 || h.hidden_dim > 4 * kMaxDim || h.n_layers == 0 ||
      h.n_layers > kMaxLayers || h.n_heads == 0 || h.n_kv_heads == 0 || h.vocab_size == 0 ||
      h.vocab_size > kMaxVocab || h.seq_len == 0 || h.seq_len > kMaxSeqLen) {
    return fail(msg, Status::BadFormat,
                "hyper-parameters out of range (dim %u hidden %u layers %u heads %u kv_heads %u vocab %u seq %u)",
                h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len);
  }
  if (h.dim % h.n_heads != 0 || h.n_heads % h.n_kv_heads != 0 || (h.dim / h.n_heads) % 2 != 0) {
    return fail(msg, Status::BadFormat, "dim %u, heads %u, kv_heads %u do not divide into even head sizes", h.dim,
                h.n_heads, h.n_kv_heads);
  }
  if (!(h.norm_eps > 0.0f && h.norm_eps < 1.0f) || !(h.rope_theta > 1.0f && h.rope_theta < 1e9f)) {
    return fail(msg, Status::BadFormat, "norm_eps or rope_theta out of range");
  }
  return Status::Ok;
}

struct Expected {
  uint32_t rows, cols;
};

Expected expected_shape(const ModelConfig& c, TensorRole role) {
  const uint32_t q_dim = c.n_heads * c.head_size;
  switch (role) {
    case TensorRole::TokenEmbedding: return {c.vocab_size, c.dim};
    case TensorRole::AttnNorm: return {1, c.dim};
    case TensorRole::Wq: return {q_dim, c.dim};
    case TensorRole::Wk: return {c.kv_dim, c.dim};
    case TensorRole::Wv: return {c.kv_dim, c.dim};
    case TensorRole::Wo: return {c.dim, q_dim};
    case TensorRole::FfnNorm: return {1, c.dim};
    case TensorRole::W1: return {c.hidden_dim, c.dim};
    case TensorRole::W2: return {c.dim, c.hidden_dim};
    case TensorRole::W3: return {c.hidden_dim, c.dim};
    case TensorRole::FinalNorm: return {1, c.dim};
    case TensorRole::Classifier: return {c.vocab_size, c.dim};
  }
  return {0, 0};
}

bool role_is_per_layer(TensorRole r) {
  return r != TensorRole::TokenEmbedding && r != TensorRole::FinalNorm && r != TensorRole::Classifier;
}

bool role_is_norm(TensorRole r) {
  return r == TensorRole::AttnNorm || r == TensorRole::FfnNorm || r == TensorRole::FinalNorm;
}

// Slot that a (role, layer) fills; all slots start empty and each must be
// filled exactly once.
WeightView* slot_for(Model* m, TensorRole role, uint32_t layer) {
  LayerWeights* L = role_is_per_layer(role) ? &m->layers[layer] : nullptr;
  switch (role) {
    case TensorRole::TokenEmbedding: return &m->embedding;
    case TensorRole::Classifier: return &m->classifier;
    case TensorRole::Wq: return &L->wq;
    case TensorRole::Wk: return &L->wk;
    case TensorRole::Wv: return &L->wv;
    case TensorRole::Wo: return &L->wo;
    case TensorRole::W1: return &L->w1;
    case TensorRole::W2: return &L->w2;
    case TensorRole::W3: return &L->w3;
    default: return nullptr;
  }
}

const float** norm_slot_for(Model* m, TensorRole role, uint32_t layer) {
  switch (role) {
    case TensorRole::AttnNorm: return &m->layers[layer].attn_norm;
    case TensorRole::FfnNorm: return &m->layers[layer].ffn_norm;
    case TensorRole::FinalNorm: return &m->final_norm;
    default: return nullptr;
  }
}

Status read_tensors(Model* m, const uint8_t* table, uint64_t table_bytes, const SectionRecord& weights,
                    Message* msg) {
  const ModelConfig& c = m->config;
  if (table_bytes != uint64_t(m->tensor_count) * sizeof(FileTensor)) {
    return fail(msg, Status::BadFormat, "tensor table is %llu bytes for %u tensors",
                (unsigned long long)table_bytes, m->tensor_count);
  }
  m->weight_bytes = 0;
  for (uint32_t i = 0; i < m->tensor_count; ++i) {
    FileTensor t;
    std::memcpy(&t, table + uint64_t(i) * sizeof t, sizeof t);
    if (t.name[kTensorNameLen - 1] != '\0') return fail(msg, Status::BadFormat, "tensor %u: name not terminated", i);
    TensorRole role = TensorRole(t.role);
    if (t.role < uint16_t(TensorRole::TokenEmbedding) || t.role > uint16_t(TensorRole::Classifier)) {
      return fail(msg, Status::BadFormat, "tensor %s: unknown role %u", t.name, t.role);
    }
    if (role_is_per_layer(role) ? t.layer >= c.n_layers : t.layer != kNoLayer) {
      return fail(msg, Status::BadFormat, "tensor %s: layer %u invalid for its role", t.name, t.layer);
    }
    Expected e = expected_shape(c, role);
    if (t.rows != e.rows || t.cols != e.cols) {
      return fail(msg, Status::BadFormat, "tensor %s: shape %ux%u, expected %ux%u", t.name, t.rows, t.cols, e.rows,
                  e.cols);
    }
    WeightFormat fmt = WeightFormat(t.format);
    if (fmt == WeightFormat::Q8 && t.params[0] != kQ8Group) {
      return fail(msg, Status::Unsupported, "tensor %s: q8 group size %u, this runtime reads groups of %u", t.name,
                  t.params[0], kQ8Group);
    }
    uint64_t need;
    if (!weight_format_bytes(fmt, t.rows, t.cols, t.params, &need)) {
      return fail(msg, Status::Unsupported, "tensor %s: weight format %u (%s) not supported by this build", t.name,
                  t.format, weight_format_name(fmt));
    }
    if (fmt == WeightFormat::BitStack && bitstack_role_slot(role) >= kBitStackRolesPerLayer) {
      return fail(msg, Status::BadFormat, "tensor %s: only per-layer linear weights may be BitStack", t.name);
    }
    if (role_is_norm(role) && fmt != WeightFormat::F32) {
      return fail(msg, Status::BadFormat, "tensor %s: norm weights must be f32", t.name);
    }
    if (t.bytes != need) {
      return fail(msg, Status::BadFormat, "tensor %s: %llu bytes, its shape and format need %llu", t.name,
                  (unsigned long long)t.bytes, (unsigned long long)need);
    }
    if (t.offset % kDataAlign != 0 || t.offset < weights.offset ||
        !range_ok(t.offset - weights.offset, t.bytes, weights.bytes)) {
      return fail(msg, Status::BadFormat, "tensor %s: data [%llu, +%llu) misaligned or outside the weights section",
                  t.name, (unsigned long long)t.offset, (unsigned long long)t.bytes);
    }
    m->weight_bytes += t.bytes;
    const uint8_t* data = m->file + t.offset;
    if (const float** ns = norm_slot_for(m, role, t.layer == kNoLayer ? 0 : t.layer)) {
      if (*ns != nullptr) return fail(msg, Status::BadFormat, "tensor %s appears twice", t.name);
      *ns = reinterpret_cast<const float*>(data);
      continue;
    }
    WeightView* w = slot_for(m, role, t.layer);
    if (w->data != nullptr) return fail(msg, Status::BadFormat, "tensor %s appears twice", t.name);
    *w = WeightView{fmt, t.rows, t.cols, data, t.bytes, {t.params[0], t.params[1], t.params[2], t.params[3]}};
  }
  // Every required tensor must be present.
  if (m->embedding.data == nullptr || m->final_norm == nullptr) {
    return fail(msg, Status::BadFormat, "model lacks the token embedding or final norm");
  }
  if (c.shared_classifier) {
    if (m->classifier.data != nullptr) return fail(msg, Status::BadFormat, "shared-classifier model has a classifier");
    m->classifier = m->embedding;
  } else if (m->classifier.data == nullptr) {
    return fail(msg, Status::BadFormat, "model lacks its classifier tensor");
  }
  for (uint32_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = m->layers[l];
    if (!L.attn_norm || !L.ffn_norm || !L.wq.data || !L.wk.data || !L.wv.data || !L.wo.data || !L.w1.data ||
        !L.w2.data || !L.w3.data) {
      return fail(msg, Status::BadFormat, "layer %u is missing tensors", l);
    }
  }
  return Status::Ok;
}

}  // namespace

FileTensor model_tensor(const Model& m, uint32_t i) {
  FileTensor t;
  std::memcpy(&t, m.tensor_table + uint64_t(i) * sizeof t, sizeof t);
  return t;
}

namespace {

// CRC of a section read through a file mapping, handing each checked chunk
// back to the system: the BitStack blocks are later read into sessions with
// pread, and pages left in the mapping would be resident memory that no
// budget counts.
uint32_t crc32_releasing(const port::MappedFile& f, uint64_t offset, uint64_t bytes) {
  // Chunks end on absolute 64 KiB boundaries; model_open releases the whole
  // region once more at the end (fault-around maps pages back in).
  constexpr uint64_t kChunk = 64 * 1024;
  uint32_t crc = 0;
  for (uint64_t at = offset, end = offset + bytes; at < end;) {
    const uint64_t next = (at / kChunk + 1) * kChunk;
    const uint64_t n = (next < end ? next : end) - at;
    crc = crc32(crc, f.data + at, size_t(n));
    port::release_mapped(f, at, n);
    at += n;
  }
  return crc;
}

}  // namespace

Status model_open(const uint8_t* data, size_t size, bool verify_data, Model** out, Message* msg,
                  const port::MappedFile* mapping) {
  *out = nullptr;
  if (data == nullptr) return fail(msg, Status::InvalidArgument, "model data is null");
  if (reinterpret_cast<uintptr_t>(data) % kDataAlign != 0) {
    return fail(msg, Status::InvalidArgument, "model data must be %u-byte aligned to be used in place", kDataAlign);
  }
  if (size < sizeof(FileHeader)) {
    return fail(msg, Status::BadFormat, "file is %zu bytes, smaller than a header", size);
  }
  FileHeader h;
  std::memcpy(&h, data, sizeof h);
  Status s = check_header(h, size, msg);
  if (s != Status::Ok) return s;

  // Section table.
  uint64_t table_bytes = uint64_t(h.section_count) * sizeof(SectionRecord);
  if (h.section_count == 0 || h.section_count > 64 || !range_ok(h.section_table_offset, table_bytes, size)) {
    return fail(msg, Status::BadFormat, "section table (%u entries at %llu) outside the file", h.section_count,
                (unsigned long long)h.section_table_offset);
  }
  if (crc32(0, data + h.section_table_offset, table_bytes) != h.section_table_crc) {
    return fail(msg, Status::Checksum, "section table checksum mismatch (file corrupted)");
  }
  SectionRecord tensors{}, tokenizer{}, weights{}, bitstack{};
  for (uint32_t i = 0; i < h.section_count; ++i) {
    SectionRecord r;
    std::memcpy(&r, data + h.section_table_offset + uint64_t(i) * sizeof r, sizeof r);
    if (!range_ok(r.offset, r.bytes, size) || r.offset % kDataAlign != 0) {
      return fail(msg, Status::BadFormat, "section %u [%llu, +%llu) misaligned or outside the file", i,
                  (unsigned long long)r.offset, (unsigned long long)r.bytes);
    }
    const bool release = mapping != nullptr && SectionKind(r.kind) == SectionKind::BitStackBlocks;
    // Before the checksum's first read: where the system backs the weights
    // with large pages, it does so as it reads them in (ports/port.h).
    if (mapping != nullptr && SectionKind(r.kind) == SectionKind::Weights) {
      port::advise_streamed(*mapping, r.offset, r.bytes);
    }
    const auto section_crc = [&] {
      return release ? crc32_releasing(*mapping, r.offset, r.bytes) : crc32(0, data + r.offset, r.bytes);
    };
    if (verify_data && section_crc() != r.crc) {
      return fail(msg, Status::Checksum, "section %u (kind %u) checksum mismatch (file corrupted)", i, r.kind);
    }
    SectionRecord* dst = nullptr;
    switch (SectionKind(r.kind)) {
      case SectionKind::TensorTable: dst = &tensors; break;
      case SectionKind::Tokenizer: dst = &tokenizer; break;
      case SectionKind::Weights: dst = &weights; break;
      case SectionKind::BitStackBlocks: dst = &bitstack; break;
      default: break;  // unknown sections are skipped: later minor versions may add some
    }
    if (dst != nullptr) {
      if (dst->kind != 0) return fail(msg, Status::BadFormat, "section kind %u appears twice", r.kind);
      *dst = r;
    }
  }
  if (tensors.kind == 0 || tokenizer.kind == 0 || weights.kind == 0) {
    return fail(msg, Status::BadFormat, "model lacks a tensor table, tokenizer or weights section");
  }
  if (!verify_data && crc32(0, data + tensors.offset, tensors.bytes) != tensors.crc) {
    // The table is small and steers every later offset: always verify it.
    return fail(msg, Status::Checksum, "tensor table checksum mismatch (file corrupted)");
  }

  size_t bytes = sizeof(Model) + sizeof(LayerWeights) * h.n_layers;
  Model* m = static_cast<Model*>(port::alloc(bytes));
  if (m == nullptr) return fail(msg, Status::OutOfMemory, "cannot allocate %zu bytes for the model handle", bytes);
  std::memset(static_cast<void*>(m), 0, bytes);
  m->layers = reinterpret_cast<LayerWeights*>(m + 1);
  m->file = data;
  m->file_size = size;
  ModelConfig& c = m->config;
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.vocab_size = h.vocab_size;
  c.seq_len = h.seq_len;
  c.head_size = h.dim / h.n_heads;
  c.kv_dim = h.n_kv_heads * c.head_size;
  c.rope_theta = h.rope_theta;
  c.norm_eps = h.norm_eps;
  c.shared_classifier = (h.flags & kFlagSharedClassifier) != 0;
  m->tensor_count = h.tensor_count;
  m->tensor_table = data + tensors.offset;

  s = read_tensors(m, data + tensors.offset, tensors.bytes, weights, msg);
  if (s == Status::Ok) {
    s = bitstack_index_build(*m, mapping, bitstack.offset, bitstack.bytes, bitstack.kind != 0, &m->bitstack, msg);
  }
  if (s == Status::Ok) s = tokenizer_view(data + tokenizer.offset, tokenizer.bytes, &m->tokenizer, msg);
  if (s == Status::Ok && m->tokenizer.vocab_size != c.vocab_size) {
    s = fail(msg, Status::BadFormat, "tokenizer has %u tokens, model vocabulary is %u", m->tokenizer.vocab_size,
             c.vocab_size);
  }
  if (s != Status::Ok) {
    bitstack_index_free(m->bitstack);
    port::dealloc(m);
    return s;
  }
  // Once more over the whole block region: faults on neighbouring pages map
  // their surroundings back in (fault-around), chunk boundaries included.
  if (mapping != nullptr && bitstack.kind != 0) port::release_mapped(*mapping, bitstack.offset, bitstack.bytes);
  *out = m;
  return Status::Ok;
}

Status model_set_tokenizer(Model* m, const uint8_t* tok_bin, size_t size, Message* msg) {
  size_t need = 0;
  Status s = tokenizer_build_section(tok_bin, size, m->config.vocab_size, nullptr, 0, &need, msg);
  if (s != Status::Ok) return s;
  uint8_t* buf = static_cast<uint8_t*>(port::alloc(need));
  if (buf == nullptr) return fail(msg, Status::OutOfMemory, "cannot allocate %zu bytes for the tokenizer", need);
  size_t got = 0;
  s = tokenizer_build_section(tok_bin, size, m->config.vocab_size, buf, need, &got, msg);
  TokenizerView v{};
  if (s == Status::Ok) s = tokenizer_view(buf, got, &v, msg);
  if (s != Status::Ok) {
    port::dealloc(buf);
    return s;
  }
  if (m->tokenizer_buffer != nullptr) port::dealloc(m->tokenizer_buffer);
  m->tokenizer_buffer = buf;
  m->tokenizer = v;
  return Status::Ok;
}

void model_close(Model* m) {
  if (m == nullptr) return;
  if (m->tokenizer_buffer != nullptr) port::dealloc(m->tokenizer_buffer);
  if (m->mapping.handle != 0) port::unmap_file(&m->mapping);
  bitstack_index_free(m->bitstack);
  port::dealloc(m);
}

}  // namespace stk

// llama2.c checkpoint importer. See llama2c_import.h for the formats.
//
// Layout sources (read, not copied): llama2.c export.py legacy_export /
// version1_export / version2_export, run.c and runq.c memory_map_weights.
// The import is driven by a plan: the list of blocks in file order. The same
// plan gives the exact expected file size (checked before anything else is
// read or allocated) and then drives the decoding, so the two cannot diverge.
#include "tools/llama2c_import.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/checked_math.h"

namespace stk::host {

std::vector<uint8_t> read_file(const std::string& path) {
  errno = 0;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> out;
  if (std::fseek(f.get(), 0, SEEK_END) == 0) {
    long n = std::ftell(f.get());
    if (n > 0) out.reserve(static_cast<size_t>(n));
  }
  std::rewind(f.get());
  uint8_t chunk[1 << 16];
  for (;;) {
    size_t got = std::fread(chunk, 1, sizeof chunk, f.get());
    out.insert(out.end(), chunk, chunk + got);
    if (got < sizeof chunk) {
      if (std::ferror(f.get()))
        throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
      break;
    }
  }
  return out;
}

namespace {

constexpr uint32_t kAk42Magic = 0x616b3432u;  // "ak42" read as little-endian uint32
constexpr uint64_t kLegacyHeaderBytes = 7 * 4;
constexpr uint64_t kAkHeaderBytes = 256;
constexpr uint64_t kAkSharedFlagOffset = 4 + 4 + 7 * 4;        // 36
constexpr uint64_t kAkGroupSizeOffset = kAkSharedFlagOffset + 1;  // 37 (unaligned)

// Sanity limits on header values. Generous for anything llama2.c can export
// (Llama 2 70B: dim 8192, hidden 28672, 80 layers), tight enough that every
// size product stays far inside 64 bits.
constexpr int64_t kMaxDim = 1 << 16;
constexpr int64_t kMaxHidden = 1 << 18;
constexpr int64_t kMaxLayers = 1 << 10;
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxSeqLen = 1 << 22;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

// Little-endian loads that do not depend on host byte order or alignment.
uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
int32_t load_i32(const uint8_t* p) {
  uint32_t u = load_u32(p);
  int32_t v;
  std::memcpy(&v, &u, 4);
  return v;
}
float load_f32(const uint8_t* p) {
  static_assert(sizeof(float) == 4, "IEEE-754 binary32 float required");
  uint32_t u = load_u32(p);
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}

struct Checked {
  const std::string& path;
  uint64_t mul(uint64_t a, uint64_t b) const {
    uint64_t r;
    if (!stk::mul_ok(a, b, &r)) fail(path, "size overflow while computing the expected file size");
    return r;
  }
  uint64_t add(uint64_t a, uint64_t b) const {
    uint64_t r;
    if (!stk::add_ok(a, b, &r)) fail(path, "size overflow while computing the expected file size");
    return r;
  }
};

struct RawParams {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

RawParams load_params(const uint8_t* p) {
  RawParams r;
  r.dim = load_i32(p + 0);
  r.hidden_dim = load_i32(p + 4);
  r.n_layers = load_i32(p + 8);
  r.n_heads = load_i32(p + 12);
  r.n_kv_heads = load_i32(p + 16);
  r.vocab_size = load_i32(p + 20);
  r.seq_len = load_i32(p + 24);
  return r;
}

void check_bounded(const std::string& path, const char* what, int64_t v, int64_t max) {
  if (v <= 0) fail(path, std::string("bad header: ") + what + " " + std::to_string(v) + " must be positive");
  if (v > max)
    fail(path, std::string("bad header: ") + what + " " + std::to_string(v) + " exceeds the limit " +
                   std::to_string(max));
}

// vocab is passed separately because legacy files encode the shared flag in
// its sign; the caller has already taken the absolute value (as int64).
HostConfig validate_params(const std::string& path, const RawParams& r, int64_t vocab, bool shared) {
  check_bounded(path, "dim", r.dim, kMaxDim);
  check_bounded(path, "hidden_dim", r.hidden_dim, kMaxHidden);
  check_bounded(path, "n_layers", r.n_layers, kMaxLayers);
  check_bounded(path, "n_heads", r.n_heads, r.dim);
  check_bounded(path, "n_kv_heads", r.n_kv_heads, r.n_heads);
  check_bounded(path, "vocab_size", vocab, kMaxVocab);
  check_bounded(path, "seq_len", r.seq_len, kMaxSeqLen);
  if (r.dim % r.n_heads != 0)
    fail(path, "bad header: dim " + std::to_string(r.dim) + " is not a multiple of n_heads " +
                   std::to_string(r.n_heads));
  if (r.n_heads % r.n_kv_heads != 0)
    fail(path, "bad header: n_heads " + std::to_string(r.n_heads) + " is not a multiple of n_kv_heads " +
                   std::to_string(r.n_kv_heads));
  if ((r.dim / r.n_heads) % 2 != 0)
    fail(path, "bad header: head size " + std::to_string(r.dim / r.n_heads) + " (dim " +
                   std::to_string(r.dim) + " / n_heads " + std::to_string(r.n_heads) +
                   ") must be even for RoPE");
  HostConfig c{};
  c.dim = uint32_t(r.dim);
  c.hidden_dim = uint32_t(r.hidden_dim);
  c.n_layers = uint32_t(r.n_layers);
  c.n_heads = uint32_t(r.n_heads);
  c.n_kv_heads = uint32_t(r.n_kv_heads);
  c.vocab_size = uint32_t(vocab);
  c.seq_len = uint32_t(r.seq_len);
  c.shared_classifier = shared;
  c.rope_theta = 10000.f;  // llama2.c run.c / runq.c hard-code both
  c.norm_eps = 1e-5f;
  return c;
}

struct Shape {
  uint32_t rows, cols;
};

Shape shape_of(const HostConfig& c, TensorRole role) {
  const uint32_t head_size = c.dim / c.n_heads;
  const uint32_t q_dim = c.n_heads * head_size;  // == dim
  const uint32_t kv_dim = c.n_kv_heads * head_size;
  switch (role) {
    case TensorRole::TokenEmbedding: return {c.vocab_size, c.dim};
    case TensorRole::AttnNorm: return {1, c.dim};
    case TensorRole::Wq: return {q_dim, c.dim};
    case TensorRole::Wk: return {kv_dim, c.dim};
    case TensorRole::Wv: return {kv_dim, c.dim};
    case TensorRole::Wo: return {c.dim, q_dim};
    case TensorRole::FfnNorm: return {1, c.dim};
    case TensorRole::W1: return {c.hidden_dim, c.dim};
    case TensorRole::W2: return {c.dim, c.hidden_dim};
    case TensorRole::W3: return {c.hidden_dim, c.dim};
    case TensorRole::FinalNorm: return {1, c.dim};
    case TensorRole::Classifier: return {c.vocab_size, c.dim};
  }
  throw std::logic_error("shape_of: unknown role");
}

constexpr TensorRole kLayerRoles[] = {TensorRole::AttnNorm, TensorRole::Wq,      TensorRole::Wk,
                                      TensorRole::Wv,       TensorRole::Wo,      TensorRole::FfnNorm,
                                      TensorRole::W1,       TensorRole::W2,      TensorRole::W3};
constexpr size_t kLayerRoleCount = sizeof(kLayerRoles) / sizeof(kLayerRoles[0]);

size_t layer_role_slot(TensorRole role) {
  for (size_t i = 0; i < kLayerRoleCount; ++i)
    if (kLayerRoles[i] == role) return i;
  throw std::logic_error("layer_role_slot: not a per-layer role");
}

// Position of (role, layer) in HostModel::tensors (see host_model.h order).
size_t tensor_index(const HostConfig& c, TensorRole role, uint32_t layer) {
  switch (role) {
    case TensorRole::TokenEmbedding: return 0;
    case TensorRole::FinalNorm: return 1 + size_t(c.n_layers) * kLayerRoleCount;
    case TensorRole::Classifier: return 2 + size_t(c.n_layers) * kLayerRoleCount;
    default: return 1 + size_t(layer) * kLayerRoleCount + layer_role_slot(role);
  }
}

// One contiguous block of the file.
struct Block {
  enum Kind { F32, Q80, SkipF32 } kind;
  TensorRole role;    // F32 / Q80
  uint32_t layer;     // F32 / Q80
  uint64_t skip = 0;  // SkipF32: number of floats
};

struct Plan {
  std::vector<Block> blocks;
  void tensor(Block::Kind k, TensorRole role, uint32_t layer) { blocks.push_back({k, role, layer, 0}); }
  void per_layer(Block::Kind k, const HostConfig& c, TensorRole role) {
    for (uint32_t l = 0; l < c.n_layers; ++l) tensor(k, role, l);
  }
  void skip_floats(uint64_t n) { blocks.push_back({Block::SkipF32, TensorRole::TokenEmbedding, 0, n}); }
};

// export.py legacy_export / run.c memory_map_weights.
Plan legacy_plan(const HostConfig& c) {
  Plan p;
  p.tensor(Block::F32, TensorRole::TokenEmbedding, kNoLayer);
  for (TensorRole r : kLayerRoles) p.per_layer(Block::F32, c, r);
  p.tensor(Block::F32, TensorRole::FinalNorm, kNoLayer);
  // freq_cis_real and freq_cis_imag: seq_len * head_size / 2 floats each.
  const uint64_t head_size = c.dim / c.n_heads;
  p.skip_floats(uint64_t(c.seq_len) * head_size / 2 * 2);
  if (!c.shared_classifier) p.tensor(Block::F32, TensorRole::Classifier, kNoLayer);
  return p;
}

// export.py version1_export: all norms first, then the embedding and the
// matrices grouped by kind across layers, then the classifier if not shared.
// version2_export / runq.c memory_map_weights: the same order, with the
// matrices (embedding included) stored as Q8_0 blocks.
Plan ak42_plan(const HostConfig& c, Block::Kind matrix_kind) {
  Plan p;
  p.per_layer(Block::F32, c, TensorRole::AttnNorm);
  p.per_layer(Block::F32, c, TensorRole::FfnNorm);
  p.tensor(Block::F32, TensorRole::FinalNorm, kNoLayer);
  p.tensor(matrix_kind, TensorRole::TokenEmbedding, kNoLayer);
  for (TensorRole r : {TensorRole::Wq, TensorRole::Wk, TensorRole::Wv, TensorRole::Wo, TensorRole::W1,
                       TensorRole::W2, TensorRole::W3})
    p.per_layer(matrix_kind, c, r);
  if (!c.shared_classifier) p.tensor(matrix_kind, TensorRole::Classifier, kNoLayer);
  return p;
}

uint64_t numel(const Checked& ck, const HostConfig& c, TensorRole role) {
  Shape s = shape_of(c, role);
  return ck.mul(s.rows, s.cols);
}

// Exact file size implied by the header and the plan; also checks that every
// Q8_0 tensor is a whole number of groups.
uint64_t expected_bytes(const std::string& path, const HostConfig& c, const Plan& plan, uint64_t header,
                        uint32_t group_size) {
  Checked ck{path};
  uint64_t total = header;
  for (const Block& b : plan.blocks) {
    switch (b.kind) {
      case Block::SkipF32: total = ck.add(total, ck.mul(b.skip, 4)); break;
      case Block::F32: total = ck.add(total, ck.mul(numel(ck, c, b.role), 4)); break;
      case Block::Q80: {
        uint64_t n = numel(ck, c, b.role);
        if (n % group_size != 0)
          fail(path, "bad header: group_size " + std::to_string(group_size) + " does not divide the " +
                         std::to_string(n) + " values of " + tensor_name(b.role, b.layer));
        total = ck.add(total, ck.add(n, ck.mul(n / group_size, 4)));
        break;
      }
    }
  }
  return total;
}

void check_size(const std::string& path, uint64_t expected, uint64_t actual, const std::string& format) {
  if (actual < expected)
    fail(path, "truncated: expected " + std::to_string(expected) + " bytes, file has " + std::to_string(actual) +
                   " (" + format + ")");
  if (actual > expected)
    fail(path, "trailing garbage: expected " + std::to_string(expected) + " bytes, file has " +
                   std::to_string(actual) + " (" + format + ")");
}

HostModel make_skeleton(const HostConfig& c, const std::string& format) {
  HostModel m;
  m.config = c;
  m.source_format = format;
  auto add = [&](TensorRole role, uint32_t layer) {
    Shape s = shape_of(c, role);
    HostTensor t;
    t.name = tensor_name(role, layer);
    t.role = role;
    t.layer = layer;
    t.rows = s.rows;
    t.cols = s.cols;
    t.data.assign(size_t(s.rows) * s.cols, 0.f);
    m.tensors.push_back(std::move(t));
  };
  add(TensorRole::TokenEmbedding, kNoLayer);
  for (uint32_t l = 0; l < c.n_layers; ++l)
    for (TensorRole r : kLayerRoles) add(r, l);
  add(TensorRole::FinalNorm, kNoLayer);
  if (!c.shared_classifier) add(TensorRole::Classifier, kNoLayer);
  return m;
}

void check_finite(const std::string& path, const HostTensor& t, size_t i, float v, const char* what) {
  if (!std::isfinite(v))
    fail(path, std::string("non-finite ") + what + " in " + t.name + " at element " + std::to_string(i));
}

// Decodes the blocks in file order. The caller has verified that the file
// size equals expected_bytes(plan), so every read below is in bounds; the
// range checks are defence in depth.
void execute(const std::string& path, const std::vector<uint8_t>& file, uint64_t offset, const Plan& plan,
             uint32_t group_size, HostModel& m) {
  auto need = [&](uint64_t bytes) {
    if (!stk::range_ok(offset, bytes, file.size())) fail(path, "internal error: read past the end of the file");
  };
  for (const Block& b : plan.blocks) {
    if (b.kind == Block::SkipF32) {
      need(b.skip * 4);
      offset += b.skip * 4;
      continue;
    }
    HostTensor& t = m.tensors.at(tensor_index(m.config, b.role, b.layer));
    if (t.role != b.role || t.layer != b.layer) throw std::logic_error("llama2c import: tensor order mismatch");
    const size_t n = t.data.size();
    if (b.kind == Block::F32) {
      need(uint64_t(n) * 4);
      const uint8_t* p = file.data() + offset;
      for (size_t i = 0; i < n; ++i) {
        t.data[i] = load_f32(p + 4 * i);
        check_finite(path, t, i, t.data[i], "value");
      }
      offset += uint64_t(n) * 4;
    } else {  // Q80: n int8 values, then n / group_size fp32 scales
      const size_t groups = n / group_size;
      need(uint64_t(n) + uint64_t(groups) * 4);
      const uint8_t* q = file.data() + offset;
      const uint8_t* s = q + n;
      for (size_t g = 0; g < groups; ++g) {
        const float scale = load_f32(s + 4 * g);
        check_finite(path, t, g * group_size, scale, "quantization scale");
        for (size_t k = g * group_size, e = k + group_size; k < e; ++k)
          t.data[k] = float(static_cast<int8_t>(q[k])) * scale;
      }
      offset += uint64_t(n) + uint64_t(groups) * 4;
    }
  }
  if (offset != file.size()) throw std::logic_error("llama2c import: plan does not cover the file");
}

std::string describe(const HostConfig& c) {
  return "dim " + std::to_string(c.dim) + ", hidden_dim " + std::to_string(c.hidden_dim) + ", n_layers " +
         std::to_string(c.n_layers) + ", n_heads " + std::to_string(c.n_heads) + ", n_kv_heads " +
         std::to_string(c.n_kv_heads) + ", vocab_size " + std::to_string(c.vocab_size) + ", seq_len " +
         std::to_string(c.seq_len) + (c.shared_classifier ? ", shared classifier" : ", separate classifier");
}

HostModel import_legacy(const std::string& path, const std::vector<uint8_t>& file) {
  if (file.size() < kLegacyHeaderBytes)
    fail(path, "truncated header: file has " + std::to_string(file.size()) + " bytes, a llama2.c legacy header needs " +
                   std::to_string(kLegacyHeaderBytes));
  const RawParams raw = load_params(file.data());
  const int64_t vocab_signed = raw.vocab_size;
  const bool shared = vocab_signed > 0;
  const HostConfig c = validate_params(path, raw, vocab_signed < 0 ? -vocab_signed : vocab_signed, shared);
  const Plan plan = legacy_plan(c);
  const std::string format = "llama2c-legacy";
  check_size(path, expected_bytes(path, c, plan, kLegacyHeaderBytes, 1), file.size(), format + ", " + describe(c));
  HostModel m = make_skeleton(c, format);
  execute(path, file, kLegacyHeaderBytes, plan, 1, m);
  return m;
}

HostModel import_ak42(const std::string& path, const std::vector<uint8_t>& file) {
  if (file.size() < kAkHeaderBytes)
    fail(path, "truncated header: file has " + std::to_string(file.size()) +
                   " bytes, a llama2.c \"ak42\" header needs " + std::to_string(kAkHeaderBytes));
  const int32_t version = load_i32(file.data() + 4);
  if (version != 1 && version != 2)
    fail(path, "unsupported llama2.c export version " + std::to_string(version) + " (supported: 1, 2)");
  const RawParams raw = load_params(file.data() + 8);
  const uint8_t shared_flag = file[kAkSharedFlagOffset];
  if (shared_flag > 1)
    fail(path, "bad header: shared_classifier flag " + std::to_string(shared_flag) + " is not 0 or 1");
  uint64_t pad_start = kAkSharedFlagOffset + 1;
  uint32_t group_size = 1;
  if (version == 2) {
    const int32_t gs = load_i32(file.data() + kAkGroupSizeOffset);
    if (gs <= 0) fail(path, "bad header: group_size " + std::to_string(gs) + " must be positive");
    group_size = uint32_t(gs);
    pad_start = kAkGroupSizeOffset + 4;
  }
  for (uint64_t i = pad_start; i < kAkHeaderBytes; ++i)
    if (file[i] != 0)
      fail(path, "bad header: non-zero byte " + std::to_string(unsigned(file[i])) + " at offset " +
                     std::to_string(i) + " in the header padding");
  const HostConfig c = validate_params(path, raw, raw.vocab_size, shared_flag == 1);
  const Plan plan = ak42_plan(c, version == 1 ? Block::F32 : Block::Q80);
  const std::string format =
      version == 1 ? "llama2c-v1" : "llama2c-v2-int8(group " + std::to_string(group_size) + ")";
  check_size(path, expected_bytes(path, c, plan, kAkHeaderBytes, group_size), file.size(),
             format + ", " + describe(c));
  HostModel m = make_skeleton(c, format);
  execute(path, file, kAkHeaderBytes, plan, group_size, m);
  return m;
}

}  // namespace

HostModel import_llama2c(const std::string& path) {
  const std::vector<uint8_t> file = read_file(path);
  if (file.size() >= 4 && load_u32(file.data()) == kAk42Magic) return import_ak42(path, file);
  // Friendlier messages for containers that are clearly not llama2.c files.
  if (file.size() >= 4 && std::memcmp(file.data(), "GGUF", 4) == 0)
    fail(path, "is a GGUF file, not a llama2.c checkpoint");
  if (file.size() >= sizeof(kFileMagic) && std::memcmp(file.data(), kFileMagic, sizeof(kFileMagic)) == 0)
    fail(path, "is a stackrt .stk file, not a llama2.c checkpoint");
  return import_legacy(path, file);
}

}  // namespace stk::host

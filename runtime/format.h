// The .stk model file layout (v1). docs/format.md is the prose specification;
// this header is its single source of truth in code, shared by the runtime
// reader and the host packer.
//
// Everything is little-endian. Structures are read with memcpy, never by
// casting file bytes, so a hostile file cannot cause misaligned access.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stk {

constexpr uint8_t kFileMagic[8] = {'S', 'T', 'A', 'C', 'K', 'R', 'T', 0};
constexpr uint32_t kFormatVersion = 1;
// Every section and every tensor starts at a multiple of this, so weights can
// be used in place from a mapping with full-width aligned vector loads.
constexpr uint32_t kDataAlign = 64;
constexpr uint32_t kTensorNameLen = 48;

// Weight formats. Codes are stable on disk; reserved ones name formats that
// later versions add, so no two features ever claim the same code.
enum class WeightFormat : uint16_t {
  Invalid = 0,
  F32 = 1,
  F16 = 2,      // reserved
  Q8 = 3,       // int8, groups of 32 along the input, one fp16 scale per group
  Q4 = 4,       // reserved (low-bit issue)
  Q3 = 5,       // reserved
  Q2 = 6,       // reserved
  T2 = 7,       // reserved: ternary
  Q4K = 8,      // Q4 codes in blocks of 16, 8-bit log-scale d and 8-bit zero per group (runtime/lowbit.h)
  Q3K = 9,      // likewise with 3-bit codes
  Q2K = 10,     // likewise with 2-bit codes
  T2K = 11,     // ternary codes in blocks of 16, 8-bit log-scale d per group
  Sparse = 16,  // reserved: N:M sparse, value format in params
  BitStack = 32 // reserved: residual sign blocks
};

// What a tensor is in the Llama graph. The runtime finds tensors by
// (role, layer); names exist for people and for --layer patterns.
enum class TensorRole : uint16_t {
  TokenEmbedding = 1,  // [vocab, dim]
  AttnNorm = 2,        // [1, dim] per layer
  Wq = 3,              // [n_heads*head_size, dim]
  Wk = 4,              // [n_kv_heads*head_size, dim]
  Wv = 5,              // [n_kv_heads*head_size, dim]
  Wo = 6,              // [dim, n_heads*head_size]
  FfnNorm = 7,         // [1, dim] per layer
  W1 = 8,              // gate [hidden, dim]
  W2 = 9,              // down [dim, hidden]
  W3 = 10,             // up [hidden, dim]
  FinalNorm = 11,      // [1, dim]
  Classifier = 12,     // [vocab, dim], absent when shared with the embedding
};
constexpr uint32_t kNoLayer = 0xFFFFFFFFu;

enum class SectionKind : uint32_t {
  TensorTable = 1,  // FileTensor records
  Tokenizer = 2,    // see runtime/tokenizer.h
  Weights = 3,      // tensor data, each tensor 64-byte aligned
  BitStackBlocks = 4,  // reserved: residual blocks in global load order
};

enum FileFlags : uint32_t {
  kFlagSharedClassifier = 1u << 0,
};

struct FileHeader {            // at offset 0, 128 bytes
  uint8_t magic[8];
  uint32_t version;
  uint32_t header_bytes;       // sizeof(FileHeader)
  uint64_t file_bytes;         // total size of the file
  uint32_t dim;
  uint32_t hidden_dim;
  uint32_t n_layers;
  uint32_t n_heads;
  uint32_t n_kv_heads;
  uint32_t vocab_size;
  uint32_t seq_len;
  uint32_t flags;              // FileFlags
  float rope_theta;
  float norm_eps;
  uint32_t section_count;
  uint32_t tensor_count;
  uint64_t section_table_offset;  // SectionRecord[section_count]
  uint32_t section_table_crc;     // CRC-32 of the section table bytes
  uint32_t reserved[10];       // zero; room for later hyper-parameters
  uint32_t header_crc;         // CRC-32 of the 124 bytes before this field
};
// No implicit padding anywhere: the CRC covers every other header byte.
static_assert(offsetof(FileHeader, header_crc) == 124, "header_crc is the last 4 header bytes");
static_assert(sizeof(FileHeader) == 128, "FileHeader is 128 bytes on disk");

struct SectionRecord {         // 32 bytes
  uint32_t kind;               // SectionKind
  uint32_t crc;                // CRC-32 of the section's bytes
  uint64_t offset;
  uint64_t bytes;
  uint64_t reserved;
};
static_assert(sizeof(SectionRecord) == 32, "SectionRecord is 32 bytes on disk");

struct FileTensor {            // 96 bytes, in the TensorTable section
  char name[kTensorNameLen];   // NUL-terminated, e.g. "layers.3.ffn.w2"
  uint16_t role;               // TensorRole
  uint16_t format;             // WeightFormat
  uint32_t layer;              // kNoLayer for global tensors
  uint32_t rows;               // output features
  uint32_t cols;               // input features
  uint64_t offset;             // absolute file offset, 64-byte aligned
  uint64_t bytes;
  uint32_t params[4];          // format-specific (e.g. group size)
};
static_assert(sizeof(FileTensor) == 96, "FileTensor is 96 bytes on disk");

// Q8: int8 weights row-major [rows*cols], then (at the next 64-byte boundary)
// fp16 scales [rows * ceil(cols/32)]. The last group of a row may be short.
constexpr uint32_t kQ8Group = 32;

}  // namespace stk

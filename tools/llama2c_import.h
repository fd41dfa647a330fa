// Importer for Karpathy llama2.c checkpoints (host tool).
//
// Formats, detected from the first bytes of the file:
//   * legacy (export v0): 7 x int32 header (dim, hidden_dim, n_layers,
//     n_heads, n_kv_heads, vocab_size, seq_len; vocab_size < 0 means a
//     separate classifier), then fp32 tensors in run.c order, including the
//     freq_cis tables (skipped). The file must be exactly sized.
//   * export v1: uint32 magic 0x616b3432 ("ak42"), int32 version 1, the same
//     7 int32 params, uint8 shared_classifier, zero padding to 256 bytes, then
//     fp32 tensors in export.py version1_export order.
//   * export v2: as v1 with version 2 and an int32 group_size right after the
//     shared flag; rmsnorm weights in fp32, then every matrix as int8 values
//     followed by its fp32 scales (one per group_size values of the flattened
//     tensor), in runq.c memory_map_weights order; dequantized as q * scale.
// Every value read from the file is untrusted: the header is validated, the
// exact file size is computed with overflow-checked arithmetic, and any
// problem throws std::runtime_error("<path>: <one-line reason>").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tools/host_model.h"

namespace stk::host {

// Whole file contents. Throws std::runtime_error("cannot open <path>: <strerror>")
// or ("cannot read <path>: <strerror>").
std::vector<uint8_t> read_file(const std::string& path);

// Reads a llama2.c checkpoint (legacy, v1 or v2) into an fp32 HostModel with
// the tensor order documented in host_model.h. source_format is
// "llama2c-legacy", "llama2c-v1" or "llama2c-v2-int8(group N)".
HostModel import_llama2c(const std::string& path);

}  // namespace stk::host

// llama2.c-compatible BPE tokenizer over an embedded, read-only "tokenizer
// section", so encoding and decoding need no runtime memory at all.
//
// Section layout (little-endian, offsets relative to the section start, every
// array 4-byte aligned):
//   u32 magic 0x4B4F5453 ("STOK"), u32 vocab_size, u32 max_token_length,
//   u32 bos_id (=1), u32 eos_id (=2), u32 bytes_size, u32 reserved[2] (0)
//   f32 scores[vocab_size]
//   u32 offsets[vocab_size+1]  token i is bytes[offsets[i] .. offsets[i+1])
//   u32 sorted[vocab_size]     ids ordered by byte string (memcmp on the common
//                              prefix, shorter first, equal strings by id)
//   u8  bytes[bytes_size], zero padding to a multiple of 4
// The section is exactly that long; views are only supported on little-endian
// hosts because the arrays are used in place.
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/status.h"

namespace stk {

constexpr uint32_t kTokenizerMagic = 0x4B4F5453u;  // "STOK"
constexpr size_t kTokenizerHeaderBytes = 32;
// Bounds the merge buffer of tokenizer_encode, which lives on the stack.
constexpr uint32_t kTokenizerMaxTokenLength = 256;

struct TokenizerView {
  uint32_t vocab_size, max_token_length, bos_id, eos_id;
  const float* scores;
  const uint32_t* offsets;
  const uint32_t* sorted;
  const char* bytes;
};

// Builds the section from the bytes of a llama2.c tokenizer.bin (i32
// max_token_length, then per token: f32 score, i32 len, len bytes). vocab_size
// comes from the model because the file does not record it; bytes left over
// after vocab_size tokens are rejected as a likely vocabulary mismatch.
// out == nullptr only computes *out_size; otherwise `out` must be 4-byte
// aligned, hold out_cap >= *out_size bytes and not overlap tok_bin.
Status tokenizer_build_section(const uint8_t* tok_bin, size_t tok_bin_size, uint32_t vocab_size, uint8_t* out,
                               size_t out_cap, size_t* out_size, Message* msg);

// Validates a section of exactly `size` bytes at a 4-byte aligned address and
// fills a zero-copy view that stays valid as long as the section memory does.
// Everything encode/decode rely on is checked here, so they never re-validate.
Status tokenizer_view(const uint8_t* section, size_t size, TokenizerView* out, Message* msg);

// Encodes `len` bytes of `text` (not NUL-terminated; a NUL byte is ordinary
// input) exactly like llama2.c run.c encode(): optional BOS, the " " token as
// dummy prefix when len > 0, one token per UTF-8 code point group or byte
// fallback (id = byte + 3), best-score pair merges over the whole sequence
// (BOS included, as llama2.c does), optional EOS. `cap` >= len + 3 always
// suffices. On error *n_out is 0 and out[] holds unspecified tokens.
Status tokenizer_encode(const TokenizerView& t, const char* text, size_t len, bool bos, bool eos,
                        int32_t* out, size_t cap, size_t* n_out, Message* msg);

// The bytes that `token` prints when it follows `prev`, as llama2.c decode():
// after BOS a leading space is dropped, and a "<0xXX>" piece becomes that one
// raw byte. Returns nullptr (and *len = 0) for an out-of-range token. The
// result points into the section or into static storage and is not
// NUL-terminated.
const char* tokenizer_decode(const TokenizerView& t, int32_t prev, int32_t token, size_t* len);

// llama2.c safe_printf(): false when there is nothing safe to print, i.e. a
// null or empty piece, or a single byte that is neither printable ASCII nor
// ASCII whitespace (C locale, independent of the process locale).
bool tokenizer_piece_is_printable(const char* piece, size_t len);

}  // namespace stk

#include "runtime/tokenizer.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "runtime/checked_math.h"

namespace stk {
namespace {

// The section's arrays are handed out as typed pointers into the mapping, so
// their byte order must be the host's.
constexpr bool kHostLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// Token ids travel as int32 through the public API.
constexpr uint32_t kMaxVocab = 0x7FFFFFFFu;
// BOS (1) and EOS (2) are fixed ids in llama2.c, so they must exist.
constexpr uint32_t kMinVocab = 3;
constexpr uint32_t kBosId = 1;
constexpr uint32_t kEosId = 2;
// llama2.c stores single raw bytes at ids 3..258 (after <unk>, <s>, </s>).
constexpr uint32_t kByteFallbackOffset = 3;
// llama2.c starts the merge search from this score, so a pair whose merged
// token scores at or below it is never merged.
constexpr float kNoMergeScore = -1e10f;

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

void store_u32(uint8_t* p, uint32_t v) { memcpy(p, &v, sizeof v); }

// memcmp on the common prefix, shorter first: for NUL-free strings this is the
// strcmp order llama2.c sorts and bsearches with.
int compare_bytes(const char* a, size_t an, const char* b, size_t bn) {
  const size_t n = an < bn ? an : bn;
  const int c = n != 0 ? memcmp(a, b, n) : 0;
  if (c != 0) return c;
  if (an == bn) return 0;
  return an < bn ? -1 : 1;
}

// True when token a sorts before token b in the `sorted` order (ties by id).
bool token_less(const uint32_t* offsets, const char* bytes, uint32_t a, uint32_t b) {
  const int c = compare_bytes(bytes + offsets[a], offsets[a + 1] - offsets[a], bytes + offsets[b],
                              offsets[b + 1] - offsets[b]);
  return c < 0 || (c == 0 && a < b);
}

uint64_t section_bytes(uint32_t vocab_size, uint64_t bytes_size) {
  // vocab_size < 2^31 and bytes_size < 2^32, so this cannot overflow 64 bits.
  const uint64_t v = vocab_size;
  return kTokenizerHeaderBytes + 4 * v + 4 * (v + 1) + 4 * v + align_up(bytes_size, 4);
}

const char* token_ptr(const TokenizerView& t, uint32_t id) { return t.bytes + t.offsets[id]; }
size_t token_len(const TokenizerView& t, uint32_t id) { return t.offsets[id + 1] - t.offsets[id]; }

// Finds the lowest id whose string equals s (lower bound over `sorted`), or -1.
int32_t lookup(const TokenizerView& t, const char* s, size_t n) {
  size_t lo = 0;
  size_t hi = t.vocab_size;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    const uint32_t id = t.sorted[mid];
    if (compare_bytes(token_ptr(t, id), token_len(t, id), s, n) < 0) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo < t.vocab_size) {
    const uint32_t id = t.sorted[lo];
    if (compare_bytes(token_ptr(t, id), token_len(t, id), s, n) == 0) return static_cast<int32_t>(id);
  }
  return -1;
}

// Encode trusts everything tokenizer_view checked; this only rejects a view
// that was never filled in or was assembled by hand with impossible values.
bool view_usable(const TokenizerView& t) {
  return t.scores != nullptr && t.offsets != nullptr && t.sorted != nullptr && t.bytes != nullptr &&
         t.vocab_size >= kMinVocab && t.vocab_size <= kMaxVocab &&
         t.max_token_length <= kTokenizerMaxTokenLength && t.bos_id < t.vocab_size && t.eos_id < t.vocab_size;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct BytePieces {
  char b[256];
  constexpr BytePieces() : b() {
    for (int i = 0; i < 256; ++i) b[i] = static_cast<char>(static_cast<unsigned char>(i));
  }
};
constexpr BytePieces kBytePieces{};

}  // namespace

Status tokenizer_build_section(const uint8_t* tok_bin, size_t tok_bin_size, uint32_t vocab_size, uint8_t* out,
                               size_t out_cap, size_t* out_size, Message* msg) {
  if (out_size == nullptr) return fail(msg, Status::InvalidArgument, "tokenizer: out_size is null");
  *out_size = 0;
  if (!kHostLittleEndian) {
    return fail(msg, Status::Unsupported, "tokenizer: big-endian hosts are not supported");
  }
  if (tok_bin == nullptr && tok_bin_size != 0) {
    return fail(msg, Status::InvalidArgument, "tokenizer: tok_bin is null but size is %zu", tok_bin_size);
  }
  if (vocab_size < kMinVocab || vocab_size > kMaxVocab) {
    return fail(msg, Status::InvalidArgument,
                "tokenizer: vocab_size %" PRIu32 " out of range [%" PRIu32 ", %" PRIu32
                "] (ids 1 and 2 are BOS and EOS)",
                vocab_size, kMinVocab, kMaxVocab);
  }
  if (tok_bin_size < 4) {
    return fail(msg, Status::BadFormat, "tokenizer.bin truncated: %zu bytes, header needs 4", tok_bin_size);
  }
  const int32_t max_len = static_cast<int32_t>(load_u32(tok_bin));
  if (max_len < 0 || static_cast<uint32_t>(max_len) > kTokenizerMaxTokenLength) {
    return fail(msg, Status::BadFormat,
                "tokenizer.bin: max_token_length %" PRId32 " out of range [0, %" PRIu32 "]", max_len,
                kTokenizerMaxTokenLength);
  }

  // First pass validates everything so nothing is written for a bad input.
  size_t off = 4;
  uint64_t blob = 0;
  for (uint32_t i = 0; i < vocab_size; ++i) {
    if (tok_bin_size - off < 8) {
      return fail(msg, Status::BadFormat,
                  "tokenizer.bin truncated at token %" PRIu32 " of %" PRIu32
                  ": record header at byte %zu, file has %zu",
                  i, vocab_size, off, tok_bin_size);
    }
    float score;
    memcpy(&score, tok_bin + off, sizeof score);
    const int32_t len = static_cast<int32_t>(load_u32(tok_bin + off + 4));
    if (score != score) {
      return fail(msg, Status::BadFormat, "tokenizer.bin: token %" PRIu32 " has a NaN score", i);
    }
    if (len < 0 || len > max_len) {
      return fail(msg, Status::BadFormat,
                  "tokenizer.bin: token %" PRIu32 " has length %" PRId32 ", max_token_length is %" PRId32, i,
                  len, max_len);
    }
    off += 8;
    if (tok_bin_size - off < static_cast<size_t>(len)) {
      return fail(msg, Status::BadFormat,
                  "tokenizer.bin truncated in token %" PRIu32 ": need %" PRId32 " bytes at %zu, file has %zu",
                  i, len, off, tok_bin_size);
    }
    off += static_cast<size_t>(len);
    blob += static_cast<uint64_t>(len);
  }
  if (off != tok_bin_size) {
    return fail(msg, Status::BadFormat,
                "tokenizer.bin has %zu bytes after %" PRIu32 " tokens (does vocab_size match the model?)",
                tok_bin_size - off, vocab_size);
  }
  if (blob > 0xFFFFFFFFu) {
    return fail(msg, Status::BadFormat, "tokenizer.bin: %llu token bytes exceed the 32-bit section limit",
                static_cast<unsigned long long>(blob));
  }
  const uint64_t total = section_bytes(vocab_size, blob);
  if (total > SIZE_MAX) {
    return fail(msg, Status::Unsupported, "tokenizer section of %llu bytes does not fit in memory",
                static_cast<unsigned long long>(total));
  }
  if (out == nullptr) {
    *out_size = static_cast<size_t>(total);
    return Status::Ok;
  }
  if (out_cap < total) {
    return fail(msg, Status::BufferTooSmall, "tokenizer section buffer too small: need %llu bytes, have %zu",
                static_cast<unsigned long long>(total), out_cap);
  }
  if (reinterpret_cast<uintptr_t>(out) % 4 != 0) {
    return fail(msg, Status::InvalidArgument, "tokenizer section buffer %p is not 4-byte aligned",
                static_cast<void*>(out));
  }
  const uintptr_t in_lo = reinterpret_cast<uintptr_t>(tok_bin);
  const uintptr_t out_lo = reinterpret_cast<uintptr_t>(out);
  if (out_lo < in_lo + tok_bin_size && in_lo < out_lo + total) {
    return fail(msg, Status::InvalidArgument, "tokenizer section buffer overlaps tokenizer.bin input");
  }

  const uint32_t v = vocab_size;
  const uint32_t blob32 = static_cast<uint32_t>(blob);
  store_u32(out + 0, kTokenizerMagic);
  store_u32(out + 4, v);
  store_u32(out + 8, static_cast<uint32_t>(max_len));
  store_u32(out + 12, kBosId);
  store_u32(out + 16, kEosId);
  store_u32(out + 20, blob32);
  store_u32(out + 24, 0);
  store_u32(out + 28, 0);
  uint8_t* scores = out + kTokenizerHeaderBytes;
  uint32_t* offsets = reinterpret_cast<uint32_t*>(scores + 4 * static_cast<size_t>(v));
  uint32_t* sorted = offsets + static_cast<size_t>(v) + 1;
  char* bytes = reinterpret_cast<char*>(sorted + v);

  off = 4;
  uint32_t pos = 0;
  for (uint32_t i = 0; i < v; ++i) {
    memcpy(scores + 4 * static_cast<size_t>(i), tok_bin + off, 4);
    const uint32_t len = load_u32(tok_bin + off + 4);
    off += 8;
    offsets[i] = pos;
    memcpy(bytes + pos, tok_bin + off, len);
    off += len;
    pos += len;
    sorted[i] = i;
  }
  offsets[v] = pos;
  memset(bytes + pos, 0, static_cast<size_t>(align_up(blob, 4) - blob));
  std::sort(sorted, sorted + v,
            [offsets, bytes](uint32_t a, uint32_t b) { return token_less(offsets, bytes, a, b); });
  *out_size = static_cast<size_t>(total);
  return Status::Ok;
}

Status tokenizer_view(const uint8_t* section, size_t size, TokenizerView* out, Message* msg) {
  if (out == nullptr) return fail(msg, Status::InvalidArgument, "tokenizer: view output is null");
  *out = TokenizerView{};
  if (section == nullptr) return fail(msg, Status::InvalidArgument, "tokenizer section is null");
  if (!kHostLittleEndian) {
    return fail(msg, Status::Unsupported, "tokenizer: big-endian hosts are not supported");
  }
  if (reinterpret_cast<uintptr_t>(section) % 4 != 0) {
    return fail(msg, Status::InvalidArgument, "tokenizer section at %p is not 4-byte aligned",
                static_cast<const void*>(section));
  }
  if (size < kTokenizerHeaderBytes) {
    return fail(msg, Status::BadFormat, "tokenizer section truncated: %zu bytes, header needs %zu", size,
                kTokenizerHeaderBytes);
  }
  const uint32_t magic = load_u32(section + 0);
  const uint32_t v = load_u32(section + 4);
  const uint32_t max_len = load_u32(section + 8);
  const uint32_t bos = load_u32(section + 12);
  const uint32_t eos = load_u32(section + 16);
  const uint32_t blob = load_u32(section + 20);
  if (magic != kTokenizerMagic) {
    return fail(msg, Status::BadFormat, "tokenizer section: bad magic 0x%08" PRIX32 ", expected 0x%08" PRIX32,
                magic, kTokenizerMagic);
  }
  if (load_u32(section + 24) != 0 || load_u32(section + 28) != 0) {
    return fail(msg, Status::BadFormat, "tokenizer section: reserved header words are not zero");
  }
  if (v < kMinVocab || v > kMaxVocab) {
    return fail(msg, Status::BadFormat,
                "tokenizer section: vocab_size %" PRIu32 " out of range [%" PRIu32 ", %" PRIu32 "]", v,
                kMinVocab, kMaxVocab);
  }
  if (max_len > kTokenizerMaxTokenLength) {
    return fail(msg, Status::BadFormat, "tokenizer section: max_token_length %" PRIu32 " exceeds %" PRIu32,
                max_len, kTokenizerMaxTokenLength);
  }
  if (bos >= v || eos >= v) {
    return fail(msg, Status::BadFormat,
                "tokenizer section: bos %" PRIu32 " / eos %" PRIu32 " not below vocab_size %" PRIu32, bos,
                eos, v);
  }
  const uint64_t total = section_bytes(v, blob);
  if (size != total) {
    return fail(msg, Status::BadFormat, "tokenizer section is %zu bytes, its header implies %llu", size,
                static_cast<unsigned long long>(total));
  }

  const float* scores = reinterpret_cast<const float*>(section + kTokenizerHeaderBytes);
  const uint32_t* offsets = reinterpret_cast<const uint32_t*>(scores + v);
  const uint32_t* sorted = offsets + static_cast<size_t>(v) + 1;
  const char* bytes = reinterpret_cast<const char*>(sorted + v);

  for (uint64_t i = blob; i < align_up(blob, 4); ++i) {
    if (bytes[i] != 0) return fail(msg, Status::BadFormat, "tokenizer section: padding byte not zero");
  }
  for (uint32_t i = 0; i < v; ++i) {
    if (scores[i] != scores[i]) {
      return fail(msg, Status::BadFormat, "tokenizer section: token %" PRIu32 " has a NaN score", i);
    }
  }
  if (offsets[0] != 0 || offsets[v] != blob) {
    return fail(msg, Status::BadFormat,
                "tokenizer section: offsets span [%" PRIu32 ", %" PRIu32 "], expected [0, %" PRIu32 "]",
                offsets[0], offsets[v], blob);
  }
  for (uint32_t i = 0; i < v; ++i) {
    if (offsets[i + 1] < offsets[i]) {
      return fail(msg, Status::BadFormat,
                  "tokenizer section: offsets decrease at token %" PRIu32 " (%" PRIu32 " -> %" PRIu32 ")", i,
                  offsets[i], offsets[i + 1]);
    }
    if (offsets[i + 1] - offsets[i] > max_len) {
      return fail(msg, Status::BadFormat,
                  "tokenizer section: token %" PRIu32 " has length %" PRIu32 ", max_token_length is %" PRIu32,
                  i, offsets[i + 1] - offsets[i], max_len);
    }
  }
  // Strictly increasing in (string, id) with every id < v makes `sorted` a
  // permutation, which binary search in encode depends on.
  for (uint32_t i = 0; i < v; ++i) {
    if (sorted[i] >= v) {
      return fail(msg, Status::BadFormat,
                  "tokenizer section: sorted[%" PRIu32 "] = %" PRIu32 " is not below vocab_size %" PRIu32, i,
                  sorted[i], v);
    }
    if (i > 0 && !token_less(offsets, bytes, sorted[i - 1], sorted[i])) {
      return fail(msg, Status::BadFormat,
                  "tokenizer section: sorted[%" PRIu32 "] = %" PRIu32 " and sorted[%" PRIu32 "] = %" PRIu32
                  " are out of order",
                  i - 1, sorted[i - 1], i, sorted[i]);
    }
  }

  out->vocab_size = v;
  out->max_token_length = max_len;
  out->bos_id = bos;
  out->eos_id = eos;
  out->scores = scores;
  out->offsets = offsets;
  out->sorted = sorted;
  out->bytes = bytes;
  return Status::Ok;
}

Status tokenizer_encode(const TokenizerView& t, const char* text, size_t len, bool bos, bool eos,
                        int32_t* out, size_t cap, size_t* n_out, Message* msg) {
  if (n_out == nullptr) return fail(msg, Status::InvalidArgument, "tokenizer_encode: n_out is null");
  *n_out = 0;
  if (text == nullptr && len != 0) {
    return fail(msg, Status::InvalidArgument, "tokenizer_encode: text is null but len is %zu", len);
  }
  if (out == nullptr && cap != 0) {
    return fail(msg, Status::InvalidArgument, "tokenizer_encode: out is null but cap is %zu", cap);
  }
  if (!view_usable(t)) {
    return fail(msg, Status::InvalidArgument, "tokenizer_encode: view was not filled by tokenizer_view");
  }

  // Keeps counting past `cap` so the error can report the room needed.
  size_t n = 0;
  auto push = [&](uint32_t id) {
    if (n < cap) out[n] = static_cast<int32_t>(id);
    ++n;
  };
  if (bos) push(t.bos_id);
  if (len > 0) {
    const int32_t space = lookup(t, " ", 1);
    if (space < 0) {
      return fail(msg, Status::Unsupported, "tokenizer: vocabulary has no \" \" token for the dummy prefix");
    }
    push(static_cast<uint32_t>(space));
  }
  size_t i = 0;
  while (i < len) {
    // As llama2.c: a group is any byte plus up to 3 following continuation
    // bytes, whether or not that forms a valid code point.
    size_t g = 1;
    while (g < 4 && i + g < len && (static_cast<uint8_t>(text[i + g]) & 0xC0) == 0x80) ++g;
    const int32_t id = lookup(t, text + i, g);
    if (id >= 0) {
      push(static_cast<uint32_t>(id));
    } else {
      for (size_t k = 0; k < g; ++k) {
        const uint32_t b = static_cast<uint8_t>(text[i + k]);
        if (b + kByteFallbackOffset >= t.vocab_size) {
          return fail(msg, Status::Unsupported,
                      "tokenizer: byte 0x%02" PRIX32 " at offset %zu needs fallback token %" PRIu32
                      ", vocab_size is %" PRIu32,
                      b, i + k, b + kByteFallbackOffset, t.vocab_size);
        }
        push(b + kByteFallbackOffset);
      }
    }
    i += g;
  }
  if (n > cap) {
    return fail(msg, Status::BufferTooSmall,
                "token buffer too small: need %zu tokens (before merges), have %zu", n, cap);
  }

  // llama2.c's O(n^2) merge loop, kept as is: any smarter queue would need
  // memory proportional to the text, and tie-breaking must stay identical.
  char pair[kTokenizerMaxTokenLength];
  for (;;) {
    float best_score = kNoMergeScore;
    size_t best_at = 0;
    int32_t best_id = -1;
    for (size_t k = 0; k + 1 < n; ++k) {
      const uint32_t a = static_cast<uint32_t>(out[k]);
      const uint32_t b = static_cast<uint32_t>(out[k + 1]);
      const size_t la = token_len(t, a);
      const size_t lb = token_len(t, b);
      // No token is longer than max_token_length, so such a pair cannot be in the vocab.
      if (la + lb > t.max_token_length) continue;
      memcpy(pair, token_ptr(t, a), la);
      memcpy(pair + la, token_ptr(t, b), lb);
      const int32_t id = lookup(t, pair, la + lb);
      if (id >= 0 && t.scores[id] > best_score) {
        best_score = t.scores[id];
        best_at = k;
        best_id = id;
      }
    }
    if (best_id < 0) break;
    out[best_at] = best_id;
    memmove(out + best_at + 1, out + best_at + 2, (n - best_at - 2) * sizeof(int32_t));
    --n;
  }

  if (eos) {
    if (n >= cap) {
      return fail(msg, Status::BufferTooSmall, "token buffer too small: need %zu tokens, have %zu", n + 1,
                  cap);
    }
    out[n++] = static_cast<int32_t>(t.eos_id);
  }
  *n_out = n;
  return Status::Ok;
}

const char* tokenizer_decode(const TokenizerView& t, int32_t prev, int32_t token, size_t* len) {
  if (len == nullptr) return nullptr;
  *len = 0;
  if (t.offsets == nullptr || t.bytes == nullptr || token < 0 ||
      static_cast<uint32_t>(token) >= t.vocab_size) {
    return nullptr;
  }
  const char* p = token_ptr(t, static_cast<uint32_t>(token));
  size_t n = token_len(t, static_cast<uint32_t>(token));
  // SentencePiece drops the dummy-prefix space of the first piece after BOS.
  if (prev >= 0 && static_cast<uint32_t>(prev) == t.bos_id && n > 0 && p[0] == ' ') {
    ++p;
    --n;
  }
  if (n == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>') {
    const int hi = hex_value(p[3]);
    const int lo = hex_value(p[4]);
    if (hi >= 0 && lo >= 0) {
      *len = 1;
      return &kBytePieces.b[hi * 16 + lo];
    }
  }
  *len = n;
  return p;
}

bool tokenizer_piece_is_printable(const char* piece, size_t len) {
  if (piece == nullptr || len == 0) return false;
  if (len > 1) return true;
  const unsigned char c = static_cast<unsigned char>(piece[0]);
  const bool printable = c >= 0x20 && c <= 0x7E;
  const bool space = c == ' ' || (c >= '\t' && c <= '\r');
  return printable || space;
}

}  // namespace stk

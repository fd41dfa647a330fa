// The index of a model's BitStack residual blocks, built and validated once at
// model open: where each block is in the file, which tensor it extends, and
// the cumulative bytes of every prefix of the global load order.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ports/port.h"
#include "runtime/bitstack_format.h"
#include "runtime/format.h"
#include "runtime/status.h"

namespace stk {

struct Model;

// Tensor slots: one per (layer, linear role), slot = layer * 7 + role slot.
constexpr uint32_t kBitStackRolesPerLayer = 7;
// 0..6 for Wq, Wk, Wv, Wo, W1, W2, W3; kBitStackRolesPerLayer for other roles.
uint32_t bitstack_role_slot(TensorRole role);

struct BitStackBlockRef {
  uint32_t slot;   // tensor slot
  uint32_t index;  // position within its tensor
};

// Budgets count a block's resident bytes (the block without its 64-byte
// header, BitStackLayout::resident_bytes()): what a session holds of it.
struct BitStackIndex {
  uint32_t n_blocks;
  uint32_t n_slots;      // n_layers * 7
  uint32_t min_blocks;   // shortest prefix holding every tensor's first block
  uint32_t n_tensors;    // BitStack tensors
  uint64_t fixed_bytes;  // all tensor data of the Weights section
  uint64_t section_offset;      // file offset of the BitStackBlocks section
  uint64_t* prefix;             // [n_blocks + 1] resident bytes of the first i blocks
  BitStackBlockRef* blocks;     // [n_blocks], in load order
  BitStackBlockMeta* meta;      // [n_blocks], in tensor order: slot_first[slot] + index
  uint32_t* slot_file_blocks;   // [n_slots] blocks in the file per slot (0 = not BitStack)
  uint32_t* slot_first;         // [n_slots] first index into a per-slot list of n_blocks entries
  uint32_t* slot_tensor;        // [n_slots] tensor-table index (0xFFFFFFFF = not BitStack)
};

// File offset of block b's header: the section is the blocks back to back,
// each its resident bytes plus a header.
inline uint64_t bitstack_block_file_offset(const BitStackIndex& ix, uint32_t b) {
  return ix.section_offset + ix.prefix[b] + uint64_t(kBitStackHeaderBytes) * b;
}

// Bytes of the index of a model with n_blocks blocks and n_slots slots: RAM
// the model holds besides the budget, reported so that it is not hidden.
size_t bitstack_index_bytes(uint32_t n_blocks, uint32_t n_slots);

// Validates the BitStackBlocks section [offset, offset+bytes) against the
// model's tensors (which must already be read) and builds the index through
// port::alloc. A model without BitStack tensors needs no section (bytes = 0)
// and gets no index (*out = null).
// `mapping`: the port's mapping of the file, if the runtime made one (block
// headers are then read through the port), else null.
Status bitstack_index_build(const Model& m, const port::MappedFile* mapping, uint64_t offset, uint64_t bytes,
                            bool have_section, BitStackIndex** out, Message* msg);
void bitstack_index_free(BitStackIndex* index);

// Largest prefix (in blocks) whose weight bytes, fixed tensors included, fit
// `budget`; may be below min_blocks.
uint32_t bitstack_blocks_for_budget(const BitStackIndex& ix, uint64_t budget);
inline uint64_t bitstack_budget_of(const BitStackIndex& ix, uint32_t blocks) {
  return ix.fixed_bytes + ix.prefix[blocks];
}

}  // namespace stk

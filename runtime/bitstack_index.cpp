#include "runtime/bitstack_index.h"

#include <cstring>

#include "ports/port.h"
#include "runtime/bitstack_format.h"
#include "runtime/checked_math.h"
#include "runtime/model.h"

namespace stk {

uint32_t bitstack_role_slot(TensorRole role) {
  switch (role) {
    case TensorRole::Wq: return 0;
    case TensorRole::Wk: return 1;
    case TensorRole::Wv: return 2;
    case TensorRole::Wo: return 3;
    case TensorRole::W1: return 4;
    case TensorRole::W2: return 5;
    case TensorRole::W3: return 6;
    default: return kBitStackRolesPerLayer;
  }
}

uint32_t bitstack_blocks_for_budget(const BitStackIndex& ix, uint64_t budget) {
  if (budget < ix.fixed_bytes) return 0;
  const uint64_t room = budget - ix.fixed_bytes;
  // prefix is non-decreasing: binary search for the last prefix <= room.
  uint32_t lo = 0, hi = ix.n_blocks;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (ix.prefix[mid] <= room) lo = mid; else hi = mid - 1;
  }
  return lo;
}

size_t bitstack_index_bytes(uint32_t n_blocks, uint32_t n_slots) {
  return align_up(sizeof(BitStackIndex), 8) + sizeof(uint64_t) * (size_t(n_blocks) + 1) +
         (sizeof(BitStackBlockRef) + sizeof(BitStackBlockMeta)) * n_blocks + sizeof(uint32_t) * 3 * size_t(n_slots);
}

void bitstack_index_free(BitStackIndex* index) {
  if (index != nullptr) port::dealloc(index);
}

namespace {

// A block header, read with the port when the runtime mapped the file: the
// block region is then never paged into the mapping, where no budget would
// count it (sessions read blocks with the port too).
Status read_header(const Model& m, const port::MappedFile* mapping, uint64_t file_offset, BitStackBlockHeader* h,
                   Message* msg) {
  if (mapping != nullptr) return port::read_mapped(*mapping, file_offset, h, sizeof *h, msg);
  std::memcpy(h, m.file + file_offset, sizeof *h);
  return Status::Ok;
}

// A kBitStackKindScaledFirst block reuses block 0's factors: it cannot be
// block 0, must have block 0's rank (block 0 is low-rank: kind 1 needs
// index > 0), and its scale must be finite and non-zero; reserved[1..3] = 0.
bool scaled_first_ok(const BitStackBlockHeader& h, uint32_t index_expected, uint32_t rank0) {
  float a;
  std::memcpy(&a, &h.reserved[0], 4);
  const bool finite = a == a && a - a == 0.0f;  // not NaN, not infinite
  return h.index == index_expected && index_expected > 0 && h.rank == rank0 && finite && a != 0.0f &&
         (h.reserved[1] | h.reserved[2] | h.reserved[3]) == 0;
}

}  // namespace

Status bitstack_index_build(const Model& m, const port::MappedFile* mapping, uint64_t offset, uint64_t bytes,
                            bool have_section, BitStackIndex** out, Message* msg) {
  *out = nullptr;
  const ModelConfig& c = m.config;
  const uint32_t n_slots = c.n_layers * kBitStackRolesPerLayer;
  uint32_t n_tensors = 0;
  for (uint32_t i = 0; i < m.tensor_count; ++i) {
    if (WeightFormat(model_tensor(m, i).format) == WeightFormat::BitStack) ++n_tensors;
  }
  if (n_tensors == 0) {
    if (have_section) return fail(msg, Status::BadFormat, "BitStack block section present but no BitStack tensor");
    return Status::Ok;
  }
  if (!have_section) return fail(msg, Status::BadFormat, "model has BitStack tensors but no block section");
  // Every block is at least a 64-byte header, which bounds the count.
  const uint64_t max_blocks = bytes / sizeof(BitStackBlockHeader);
  if (max_blocks == 0 || max_blocks > (1u << 26)) {
    return fail(msg, Status::BadFormat, "BitStack block section of %llu bytes", (unsigned long long)bytes);
  }
  // First pass: count blocks, so the index is allocated exactly.
  uint32_t n_blocks = 0;
  for (uint64_t at = 0; at < bytes; ++n_blocks) {
    BitStackBlockHeader h;
    if (!range_ok(at, sizeof h, bytes)) return fail(msg, Status::BadFormat, "BitStack block %u: truncated header", n_blocks);
    Status rs = read_header(m, mapping, offset + at, &h, msg);
    if (rs != Status::Ok) return rs;
    if (h.bytes == 0 || h.bytes % kDataAlign != 0 || !range_ok(at, h.bytes, bytes)) {
      return fail(msg, Status::BadFormat, "BitStack block %u: size %llu invalid or outside its section", n_blocks,
                  (unsigned long long)h.bytes);
    }
    at += h.bytes;
  }
  // The index, then (during validation only) each slot's tensor and block-0 rank.
  const size_t need = bitstack_index_bytes(n_blocks, n_slots) + sizeof(uint32_t) * size_t(n_slots);
  uint8_t* mem = static_cast<uint8_t*>(port::alloc(need));
  if (mem == nullptr) return fail(msg, Status::OutOfMemory, "cannot allocate %zu bytes for the BitStack index", need);
  std::memset(mem, 0, need);
  BitStackIndex* ix = reinterpret_cast<BitStackIndex*>(mem);
  ix->prefix = reinterpret_cast<uint64_t*>(mem + align_up(sizeof(BitStackIndex), 8));
  ix->blocks = reinterpret_cast<BitStackBlockRef*>(ix->prefix + n_blocks + 1);
  ix->meta = reinterpret_cast<BitStackBlockMeta*>(ix->blocks + n_blocks);
  ix->slot_file_blocks = reinterpret_cast<uint32_t*>(ix->meta + n_blocks);
  ix->slot_first = ix->slot_file_blocks + n_slots;
  ix->slot_tensor = ix->slot_first + n_slots;
  ix->section_offset = offset;
  ix->n_blocks = n_blocks;
  ix->n_slots = n_slots;
  ix->n_tensors = n_tensors;
  ix->fixed_bytes = m.weight_bytes;

  // Slot -> tensor, and each slot's first position in tensor order from the
  // block counts the tensors declare (which must add up to the section's).
  uint32_t* slot_tensor = ix->slot_tensor;
  uint32_t* rank0 = slot_tensor + n_slots;  // rank of each slot's block 0 (validation only)
  for (uint32_t s = 0; s < n_slots; ++s) slot_tensor[s] = 0xFFFFFFFFu;
  for (uint32_t i = 0; i < m.tensor_count; ++i) {
    FileTensor t = model_tensor(m, i);
    if (WeightFormat(t.format) != WeightFormat::BitStack) continue;
    // model.cpp has checked the role, layer, shape and params already.
    slot_tensor[t.layer * kBitStackRolesPerLayer + bitstack_role_slot(TensorRole(t.role))] = i;
  }
  uint64_t declared = 0;
  for (uint32_t s = 0; s < n_slots; ++s) {
    ix->slot_first[s] = uint32_t(declared);  // used only if the total below matches
    if (slot_tensor[s] != 0xFFFFFFFFu) declared += model_tensor(m, slot_tensor[s]).params[0];
  }
  if (declared != n_blocks) {
    port::dealloc(mem);
    return fail(msg, Status::BadFormat, "BitStack tensors declare %llu blocks, the section holds %u",
                (unsigned long long)declared, n_blocks);
  }
  Status st = Status::Ok;
  uint32_t* seen = ix->slot_file_blocks;  // blocks seen so far per slot
  uint32_t firsts = 0;
  uint64_t at = 0;
  for (uint32_t b = 0; b < n_blocks && st == Status::Ok; ++b) {
    BitStackBlockHeader h;
    st = read_header(m, mapping, offset + at, &h, msg);
    if (st != Status::Ok) break;
    const uint32_t rs = bitstack_role_slot(TensorRole(h.role));
    BitStackLayout lay{};
    if (h.magic != kBitStackBlockMagic) {
      st = fail(msg, Status::BadFormat, "BitStack block %u: bad magic", b);
    } else if (h.layer >= c.n_layers || rs >= kBitStackRolesPerLayer) {
      st = fail(msg, Status::BadFormat, "BitStack block %u: layer %u role %u invalid", b, h.layer, h.role);
    } else if (slot_tensor[h.layer * kBitStackRolesPerLayer + rs] == 0xFFFFFFFFu) {
      st = fail(msg, Status::BadFormat, "BitStack block %u: layer %u role %u is not a BitStack tensor", b, h.layer,
                h.role);
    } else {
      const uint32_t slot = h.layer * kBitStackRolesPerLayer + rs;
      const uint32_t ti = slot_tensor[slot];
      FileTensor t = model_tensor(m, ti);
      if (h.rows != t.rows || h.cols != t.cols) {
        st = fail(msg, Status::BadFormat, "BitStack block %u: shape %ux%u, tensor %s is %ux%u", b, h.rows, h.cols,
                  t.name, t.rows, t.cols);
      } else if ((h.kind != kBitStackKindLowRank && h.kind != kBitStackKindScaledFirst) || h.rank == 0 ||
                 h.rank > kBitStackMaxRank) {
        st = fail(msg, Status::BadFormat, "BitStack block %u: kind %u rank %u unsupported", b, h.kind, h.rank);
      } else if (!bitstack_layout_kind(h.rows, h.cols, h.rank, h.kind, &lay) || lay.bytes != h.bytes ||
                 lay.sign_row_bytes != h.sign_row_bytes || lay.u_offset != h.u_offset ||
                 lay.v_offset != h.v_offset) {
        st = fail(msg, Status::BadFormat, "BitStack block %u: layout fields disagree with its shape and rank", b);
      } else if (h.kind == kBitStackKindScaledFirst && !scaled_first_ok(h, seen[slot], rank0[slot])) {
        st = fail(msg, Status::BadFormat,
                  "BitStack block %u: a scaled copy of block 0 needs index > 0, block 0's rank and a finite scale", b);
      } else if (h.kind == kBitStackKindLowRank && (h.reserved[0] | h.reserved[1] | h.reserved[2] | h.reserved[3])) {
        st = fail(msg, Status::BadFormat, "BitStack block %u: reserved header words are not zero", b);
      } else if (h.index != seen[slot] || seen[slot] >= t.params[0]) {
        st = fail(msg, Status::BadFormat, "BitStack block %u: index %u of tensor %s out of order (expected %u of %u)",
                  b, h.index, t.name, seen[slot], t.params[0]);
      } else {
        ix->meta[ix->slot_first[slot] + h.index] = bitstack_block_meta(h);
        if (h.index == 0) {
          rank0[slot] = h.rank;
          ++firsts;
          if (firsts == n_tensors) ix->min_blocks = b + 1;
        }
        ++seen[slot];
        ix->blocks[b] = BitStackBlockRef{slot, h.index};
        ix->prefix[b + 1] = ix->prefix[b] + lay.resident_bytes();
      }
    }
    at += h.bytes;
  }
  for (uint32_t s = 0; s < n_slots && st == Status::Ok; ++s) {
    if (slot_tensor[s] == 0xFFFFFFFFu) continue;
    FileTensor t = model_tensor(m, slot_tensor[s]);
    if (seen[s] != t.params[0]) {
      st = fail(msg, Status::BadFormat, "tensor %s declares %u BitStack blocks, the file holds %u", t.name,
                t.params[0], seen[s]);
    }
  }
  if (st != Status::Ok) {
    port::dealloc(mem);
    return st;
  }
  *out = ix;
  return Status::Ok;
}

}  // namespace stk

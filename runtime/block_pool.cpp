#include "runtime/block_pool.h"

#include <cstring>
#include <new>

#include "ports/port.h"
#include "runtime/bitstack_signs16.h"

namespace stk {

uint64_t model_min_budget(const Model& m) {
  return m.bitstack != nullptr ? bitstack_budget_of(*m.bitstack, m.bitstack->min_blocks) : m.weight_bytes;
}
uint64_t model_full_budget(const Model& m) {
  return m.bitstack != nullptr ? bitstack_budget_of(*m.bitstack, m.bitstack->n_blocks) : m.weight_bytes;
}

namespace {

template <typename Layer>  // LayerWeights, const or not
auto view_for_slot(Layer* L, uint32_t role_slot) -> decltype(&L->wq) {
  switch (role_slot) {
    case 0: return &L->wq;
    case 1: return &L->wk;
    case 2: return &L->wv;
    case 3: return &L->wo;
    case 4: return &L->w1;
    case 5: return &L->w2;
    default: return &L->w3;
  }
}

// Re-lays the sign planes of resident blocks [from, to) that take the 16-row layout.
void relayout_blocks(BlockPool* p, uint32_t from, uint32_t to, bool to_groups) {
  const BitStackIndex& ix = *p->index;
  for (uint32_t b = from; b < to; ++b) {
    const BitStackTensor& t = p->tensors[ix.blocks[b].slot];
    if (!signs16_applies(t.rows, t.cols)) continue;
    signs16_relayout(p->base + ix.prefix[b], t.rows, (t.cols + 7) / 8, to_groups, p->scratch);
  }
}

// Reads the blocks between the two prefixes in one pass over their file
// range, in file order, each block's bytes after its header (the index holds
// what the header says): through the port when the runtime opened the file
// itself (pread, so the bytes are charged to the arena and not to a
// page-cache mapping), else from the in-memory image (flash, or a buffer the
// caller owns).
Status push_blocks(BlockPool* p, uint32_t to, Message* msg) {
  const BitStackIndex& ix = *p->index;
  const uint32_t from = p->resident;
  if (to <= from) return Status::Ok;
  const uint64_t offset = bitstack_block_file_offset(ix, from);
  const uint64_t bytes = ix.prefix[to] - ix.prefix[from];
  if (p->hook.fn != nullptr) {
    const int code = p->hook.fn(p->hook.user, offset, bytes);
    if (code != 0) {
      return fail(msg, Status::Io, "the read hook refused reading %llu bytes at offset %llu (code %d)",
                  (unsigned long long)bytes, (unsigned long long)offset, code);
    }
  }
  const Model& m = *p->model;
  for (uint32_t b = from; b < to; ++b) {
    uint8_t* dst = p->base + ix.prefix[b];
    const uint64_t src = bitstack_block_file_offset(ix, b) + kBitStackHeaderBytes;
    const size_t n = size_t(ix.prefix[b + 1] - ix.prefix[b]);
    if (m.mapping.handle != 0) {
      const Status s = port::read_mapped(m.mapping, src, dst, n, msg);
      if (s != Status::Ok) return s;
    } else {
      std::memcpy(dst, m.file + src, n);
    }
  }
  for (uint32_t b = from; b < to; ++b) {
    BitStackTensor& t = p->tensors[ix.blocks[b].slot];
    t.blocks[t.n_loaded++] = p->base + ix.prefix[b];
  }
  if (p->signs16) relayout_blocks(p, from, to, true);
  p->resident = to;
  return Status::Ok;
}

void pop_blocks(BlockPool* p, uint32_t to) {
  const BitStackIndex& ix = *p->index;
  for (uint32_t b = p->resident; b > to; --b) --p->tensors[ix.blocks[b - 1].slot].n_loaded;
  p->resident = to < p->resident ? to : p->resident;
}

}  // namespace

Status block_pool_plan(const Model& m, uint64_t max_budget, bool signs16, Arena* a, BlockPool** out, Message* msg) {
  *out = nullptr;
  const BitStackIndex* ix = m.bitstack;
  if (ix == nullptr) {
    if (max_budget != 0 && max_budget < m.weight_bytes) {
      return fail(msg, Status::Budget, "budget %llu bytes is below the model's minimum of %llu bytes",
                  (unsigned long long)max_budget, (unsigned long long)m.weight_bytes);
    }
    return Status::Ok;
  }
  uint32_t cap = ix->n_blocks;
  if (max_budget != 0) {
    cap = bitstack_blocks_for_budget(*ix, max_budget);
    if (cap < ix->min_blocks) {
      return fail(msg, Status::Budget, "budget %llu bytes is below the model's minimum of %llu bytes",
                  (unsigned long long)max_budget, (unsigned long long)model_min_budget(m));
    }
  }
  const uint32_t n_layers = m.config.n_layers;
  BlockPool* p = a->take_array<BlockPool>(1);
  BitStackTensor* tensors = a->take_array<BitStackTensor>(ix->n_slots);
  const uint8_t** ptrs = a->take_array<const uint8_t*>(ix->n_blocks);
  LayerWeights* layers = a->take_array<LayerWeights>(n_layers);
  uint8_t* base = static_cast<uint8_t*>(a->take(ix->prefix[cap], kDataAlign));
  size_t scratch_bytes = 0;  // for the widest plane that takes the 16-row layout
  for (uint32_t l = 0; signs16 && l < n_layers; ++l) {
    for (uint32_t r = 0; r < kBitStackRolesPerLayer; ++r) {
      const WeightView* w = view_for_slot(&m.layers[l], r);
      if (w->format == WeightFormat::BitStack && signs16_applies(w->rows, w->cols)) {
        const size_t need = signs16_scratch_bytes((w->cols + 7) / 8);
        scratch_bytes = need > scratch_bytes ? need : scratch_bytes;
      }
    }
  }
  uint8_t* scratch = scratch_bytes != 0 ? static_cast<uint8_t*>(a->take(scratch_bytes, 64)) : nullptr;
  if (a->measuring() || a->overflowed()) return Status::Ok;

  new (p) BlockPool{};
  p->model = &m;
  p->index = ix;
  p->base = base;
  p->capacity = cap;
  p->resident = 0;
  p->tensors = tensors;
  p->layers = layers;
  p->signs16 = scratch != nullptr;
  p->scratch = scratch;
  std::memcpy(static_cast<void*>(layers), m.layers, sizeof(LayerWeights) * n_layers);
  for (uint32_t s = 0; s < ix->n_slots; ++s) {
    BitStackTensor& t = tensors[s];
    t = BitStackTensor{nullptr, ptrs + ix->slot_first[s], ix->meta + ix->slot_first[s], 0, 0, 0, false};
    if (ix->slot_file_blocks[s] == 0) continue;
    WeightView* w = view_for_slot(&layers[s / kBitStackRolesPerLayer], s % kBitStackRolesPerLayer);
    t.in_scale = (w->params[1] & 1u) ? reinterpret_cast<const float*>(w->data) : nullptr;
    t.rows = w->rows;
    t.cols = w->cols;
    t.signs16 = p->signs16 && signs16_applies(t.rows, t.cols);
    w->data = reinterpret_cast<const uint8_t*>(&t);
  }
  const Status s = push_blocks(p, cap, msg);
  if (s != Status::Ok) return s;
  *out = p;
  return Status::Ok;
}

void block_pool_use_signs16(BlockPool* p, bool signs16) {
  if (p->scratch == nullptr) return;  // no plane takes the layout, or the pool was planned without it
  if (signs16 != p->signs16) relayout_blocks(p, 0, p->resident, signs16);
  p->signs16 = signs16;
  for (uint32_t s = 0; s < p->index->n_slots; ++s) {
    BitStackTensor& t = p->tensors[s];
    t.signs16 = signs16 && signs16_applies(t.rows, t.cols);
  }
}

Status block_pool_set_budget(BlockPool* p, uint64_t budget, BudgetReport* r, Message* msg) {
  const BitStackIndex& ix = *p->index;
  uint32_t want = bitstack_blocks_for_budget(ix, budget);
  if (want < ix.min_blocks) {
    return fail(msg, Status::Budget, "budget %llu bytes is below the model's minimum of %llu bytes",
                (unsigned long long)budget, (unsigned long long)model_min_budget(*p->model));
  }
  if (want > p->capacity) want = p->capacity;
  const uint32_t from = p->resident;
  BudgetReport out{};
  if (want > from) {
    const Status s = push_blocks(p, want, msg);
    if (s != Status::Ok) return s;
    out.blocks_loaded = want - from;
    out.bytes_loaded = ix.prefix[want] - ix.prefix[from];
  } else if (want < from) {
    out.blocks_dropped = from - want;
    out.bytes_dropped = ix.prefix[from] - ix.prefix[want];
    pop_blocks(p, want);
  }
  out.blocks_resident = p->resident;
  out.weight_bytes = bitstack_budget_of(ix, p->resident);
  if (r != nullptr) *r = out;
  return Status::Ok;
}

}  // namespace stk

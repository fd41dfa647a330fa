// The C API: argument checks and translation to the runtime. No logic that a
// C++ caller of the runtime would not also need lives here.
#include "c_api/stackrt.h"

#include <cstddef>
#include <cstring>

#include "ports/port.h"
#include "runtime/bitstack_index.h"
#include "runtime/block_pool.h"
#include "runtime/model.h"
#include "runtime/session.h"

static_assert(STK_STACK_USE_BYTES == stk::port::kStackUseBytes, "the stack figure of stackrt.h is the port's");

using stk::Message;
using stk::Status;

struct stk_model {
  stk::Model impl;
};
struct stk_session {
  stk::Session impl;
};

namespace {

stk_status to_c(Status s) { return static_cast<stk_status>(static_cast<int>(s)); }

Message wrap(stk_message* m) { return m != nullptr ? Message{m->text, sizeof m->text} : Message{nullptr, 0}; }

stk_status fail_c(stk_message* m, Status s, const char* text) {
  Message w = wrap(m);
  return to_c(stk::fail(&w, s, "%s", text));
}

// Copies a caller's option struct into a zeroed local of this library's
// layout: older (shorter) structs leave new fields at their zero default;
// newer (longer) ones are accepted only if the fields we do not know are zero.
template <typename T>
stk_status read_options(const T* in, T* out, const char* what, stk_message* msg) {
  std::memset(out, 0, sizeof *out);
  if (in == nullptr) return STK_OK;
  uint32_t size;
  std::memcpy(&size, in, sizeof size);
  if (size < sizeof(uint32_t)) {
    Message w = wrap(msg);
    return to_c(stk::fail(&w, Status::InvalidArgument, "%s.struct_size is %u: initialise it with its _INIT macro",
                          what, size));
  }
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(in);
  for (uint32_t i = sizeof(T); i < size; ++i) {
    if (bytes[i] != 0) {
      Message w = wrap(msg);
      return to_c(stk::fail(&w, Status::Unsupported, "%s sets an option this library version (%s) does not know",
                            what, STK_VERSION_STRING));
    }
  }
  std::memcpy(out, in, size < sizeof(T) ? size : sizeof(T));
  return STK_OK;
}

// read_options plus a check that every flag is one this version knows.
stk_status read_session_config(const stk_session_config* in, stk_session_config* out, stk_message* msg) {
  stk_status rc = read_options(in, out, "stk_session_config", msg);
  if (rc != STK_OK) return rc;
  const uint32_t unknown = out->flags & ~uint32_t(STK_SESSION_SCALAR_KERNELS);
  if (unknown != 0) {
    Message w = wrap(msg);
    return to_c(stk::fail(&w, Status::Unsupported, "stk_session_config.flags has bits 0x%x that this library version (%s) does not know",
                          unknown, STK_VERSION_STRING));
  }
  return STK_OK;
}

stk::SessionConfig session_config(const stk_session_config& c) {
  return stk::SessionConfig{c.context_length, c.n_threads, c.max_batch, c.max_budget_bytes,
                           (c.flags & STK_SESSION_SCALAR_KERNELS) != 0};
}

stk_status finish_open(stk::Model* m, const stk_model_options& o, stk_model** out, stk_message* msg) {
  if (o.tokenizer_path != nullptr) {
    Message w = wrap(msg);
    stk::port::MappedFile f{};
    Status s = stk::port::map_file(o.tokenizer_path, &f, &w);
    if (s == Status::Ok) {
      s = stk::model_set_tokenizer(m, f.data, f.size, &w);
      stk::port::unmap_file(&f);
    }
    if (s != Status::Ok) {
      stk::model_close(m);
      return to_c(s);
    }
  }
  *out = reinterpret_cast<stk_model*>(m);
  return STK_OK;
}

}  // namespace

extern "C" {

const char* stk_version(void) { return STK_VERSION_STRING; }
unsigned stk_version_number(void) { return STK_VERSION_NUMBER; }

const char* stk_status_string(stk_status status) { return stk::status_name(static_cast<Status>(status)); }

stk_status stk_model_open_memory(const void* data, size_t size, const stk_model_options* options,
                                 stk_model** out_model, stk_message* msg) {
  if (out_model == nullptr) return fail_c(msg, Status::InvalidArgument, "out_model is NULL");
  *out_model = nullptr;
  stk_model_options o;
  stk_status rc = read_options(options, &o, "stk_model_options", msg);
  if (rc != STK_OK) return rc;
  Message w = wrap(msg);
  stk::Model* m = nullptr;
  Status s = stk::model_open(static_cast<const uint8_t*>(data), size, (o.flags & STK_MODEL_SKIP_DATA_CHECKSUMS) == 0,
                             &m, &w);
  if (s != Status::Ok) return to_c(s);
  return finish_open(m, o, out_model, msg);
}

stk_status stk_model_open_file(const char* path, const stk_model_options* options, stk_model** out_model,
                               stk_message* msg) {
  if (out_model == nullptr) return fail_c(msg, Status::InvalidArgument, "out_model is NULL");
  *out_model = nullptr;
  if (path == nullptr) return fail_c(msg, Status::InvalidArgument, "path is NULL");
  stk_model_options o;
  stk_status rc = read_options(options, &o, "stk_model_options", msg);
  if (rc != STK_OK) return rc;
  Message w = wrap(msg);
  stk::port::MappedFile f{};
  Status s = stk::port::map_file(path, &f, &w);
  if (s != Status::Ok) return to_c(s);
  stk::Model* m = nullptr;
  s = stk::model_open(f.data, f.size, (o.flags & STK_MODEL_SKIP_DATA_CHECKSUMS) == 0, &m, &w, &f);
  if (s != Status::Ok) {
    stk::port::unmap_file(&f);
    return to_c(s);
  }
  m->mapping = f;
  return finish_open(m, o, out_model, msg);
}

void stk_model_close(stk_model* model) {
  if (model != nullptr) stk::model_close(&model->impl);
}

stk_status stk_model_get_info(const stk_model* model, stk_model_info* out_info, stk_message* msg) {
  if (model == nullptr || out_info == nullptr) return fail_c(msg, Status::InvalidArgument, "model or info is NULL");
  if (out_info->struct_size < sizeof(stk_model_info)) {
    return fail_c(msg, Status::InvalidArgument, "stk_model_info.struct_size too small: use STK_MODEL_INFO_INIT");
  }
  const stk::Model& m = model->impl;
  const stk::ModelConfig& c = m.config;
  stk_model_info i = STK_MODEL_INFO_INIT;
  i.dim = c.dim;
  i.hidden_dim = c.hidden_dim;
  i.n_layers = c.n_layers;
  i.n_heads = c.n_heads;
  i.n_kv_heads = c.n_kv_heads;
  i.vocab_size = c.vocab_size;
  i.seq_len = c.seq_len;
  i.n_tensors = m.tensor_count;
  i.bos_token = int32_t(m.tokenizer.bos_id);
  i.eos_token = int32_t(m.tokenizer.eos_id);
  i.weight_bytes = m.weight_bytes;
  i.file_bytes = m.file_size;
  *out_info = i;
  return STK_OK;
}

stk_status stk_model_tensor_info(const stk_model* model, uint32_t index, stk_tensor_info* out_info,
                                 stk_message* msg) {
  if (model == nullptr || out_info == nullptr) return fail_c(msg, Status::InvalidArgument, "model or info is NULL");
  if (out_info->struct_size < sizeof(stk_tensor_info)) {
    return fail_c(msg, Status::InvalidArgument, "stk_tensor_info.struct_size too small: use STK_TENSOR_INFO_INIT");
  }
  if (index >= model->impl.tensor_count) {
    Message w = wrap(msg);
    return to_c(stk::fail(&w, Status::InvalidArgument, "tensor index %u out of range (model has %u)", index,
                          model->impl.tensor_count));
  }
  stk::FileTensor t = stk::model_tensor(model->impl, index);
  stk_tensor_info i = STK_TENSOR_INFO_INIT;
  static_assert(sizeof i.name == stk::kTensorNameLen, "name buffers agree");
  std::memcpy(i.name, t.name, sizeof i.name);
  i.format = t.format;
  i.format_name = stk::weight_format_name(stk::WeightFormat(t.format));
  i.rows = t.rows;
  i.cols = t.cols;
  i.layer = t.layer == stk::kNoLayer ? -1 : int32_t(t.layer);
  i.bytes = t.bytes;
  *out_info = i;
  return STK_OK;
}

stk_status stk_tokenize(const stk_model* model, const char* text, size_t text_len, int add_bos, int32_t* tokens,
                        size_t capacity, size_t* out_n_tokens, stk_message* msg) {
  if (model == nullptr || (text == nullptr && text_len > 0) || tokens == nullptr || out_n_tokens == nullptr) {
    return fail_c(msg, Status::InvalidArgument, "stk_tokenize: NULL argument");
  }
  Message w = wrap(msg);
  return to_c(stk::tokenizer_encode(model->impl.tokenizer, text != nullptr ? text : "", text_len, add_bos != 0,
                                    false, tokens, capacity, out_n_tokens, &w));
}

const char* stk_token_piece(const stk_model* model, int32_t prev_token, int32_t token, size_t* out_len) {
  size_t len = 0;
  const char* p = model != nullptr ? stk::tokenizer_decode(model->impl.tokenizer, prev_token, token, &len) : nullptr;
  if (out_len != nullptr) *out_len = p != nullptr ? len : 0;
  return p;
}

int stk_piece_is_printable(const char* piece, size_t len) {
  return piece != nullptr && stk::tokenizer_piece_is_printable(piece, len) ? 1 : 0;
}

stk_status stk_session_arena_size(const stk_model* model, const stk_session_config* config, size_t* out_bytes,
                                  stk_message* msg) {
  if (model == nullptr || out_bytes == nullptr) return fail_c(msg, Status::InvalidArgument, "NULL argument");
  stk_session_config c;
  stk_status rc = read_session_config(config, &c, msg);
  if (rc != STK_OK) return rc;
  stk::Arena a{nullptr, 0, 0};
  Message w = wrap(msg);
  stk::Session* unused = nullptr;
  Status s = stk::session_plan(model->impl, session_config(c), &a, &unused, &w);
  if (s != Status::Ok) return to_c(s);
  // The caller's arena may start anywhere: reserve room to align it.
  if (!a.required(64, out_bytes)) {
    return fail_c(msg, Status::OutOfMemory, "this configuration needs more memory than the platform can address");
  }
  return STK_OK;
}

stk_status stk_session_init(const stk_model* model, const stk_session_config* config, void* arena,
                            size_t arena_bytes, stk_session** out_session, stk_message* msg) {
  if (out_session == nullptr) return fail_c(msg, Status::InvalidArgument, "out_session is NULL");
  *out_session = nullptr;
  if (model == nullptr || arena == nullptr) return fail_c(msg, Status::InvalidArgument, "model or arena is NULL");
  stk_session_config c;
  stk_status rc = read_session_config(config, &c, msg);
  if (rc != STK_OK) return rc;
  // Measure first, so a short arena is reported with the full requirement.
  stk::Arena probe{nullptr, 0, 0};
  stk::Session* s = nullptr;
  Message w = wrap(msg);
  Status st = stk::session_plan(model->impl, session_config(c), &probe, &s, &w);
  if (st != Status::Ok) return to_c(st);
  size_t need = 0;
  if (!probe.required(64, &need)) {
    return fail_c(msg, Status::OutOfMemory, "this configuration needs more memory than the platform can address");
  }
  if (need > arena_bytes) {
    return to_c(stk::fail(&w, Status::ArenaTooSmall, "arena too small: need %zu bytes, have %zu", need, arena_bytes));
  }
  stk::Arena a{static_cast<uint8_t*>(arena), arena_bytes, 0};
  st = stk::session_plan(model->impl, session_config(c), &a, &s, &w);
  if (st != Status::Ok) return to_c(st);
  *out_session = reinterpret_cast<stk_session*>(s);
  return STK_OK;
}

void stk_session_free(stk_session* session) {
  if (session != nullptr) stk::session_stop(&session->impl);
}

void stk_session_reset(stk_session* session) {
  if (session != nullptr) session->impl.pos = 0;
}

uint32_t stk_session_position(const stk_session* session) { return session != nullptr ? session->impl.pos : 0; }

stk_status stk_session_eval(stk_session* session, const int32_t* tokens, uint32_t n_tokens, float* all_logits,
                            stk_message* msg) {
  if (session == nullptr) return fail_c(msg, Status::InvalidArgument, "session is NULL");
  Message w = wrap(msg);
  return to_c(stk::session_eval(&session->impl, tokens, n_tokens, all_logits, &w));
}

const float* stk_session_logits(const stk_session* session) {
  return session != nullptr ? session->impl.logits : nullptr;
}

stk_status stk_session_set_sampler(stk_session* session, const stk_sampler_config* config, stk_message* msg) {
  if (session == nullptr) return fail_c(msg, Status::InvalidArgument, "session is NULL");
  stk_sampler_config c;
  stk_status rc = read_options(config, &c, "stk_sampler_config", msg);
  if (rc != STK_OK) return rc;
  if (!(c.temperature >= 0.0f) || !(c.top_p >= 0.0f)) {
    return fail_c(msg, Status::InvalidArgument, "temperature and top_p must be >= 0");
  }
  stk::Session& s = session->impl;
  stk::sampler_init(&s.sampler, s.model->config.vocab_size, c.temperature, c.top_p, c.seed, s.sampler_scratch);
  return STK_OK;
}

stk_status stk_session_sample(stk_session* session, int32_t* out_token, stk_message* msg) {
  if (session == nullptr || out_token == nullptr) return fail_c(msg, Status::InvalidArgument, "NULL argument");
  if (session->impl.pos == 0) return fail_c(msg, Status::InvalidArgument, "no logits yet: evaluate a token first");
  *out_token = stk::sampler_sample(&session->impl.sampler, session->impl.logits);
  return STK_OK;
}

stk_status stk_generate(stk_session* session, const char* prompt, uint32_t steps, const stk_sampler_config* sampler,
                        stk_piece_callback on_piece, void* user, stk_generate_stats* stats, stk_message* msg) {
  if (session == nullptr) return fail_c(msg, Status::InvalidArgument, "session is NULL");
  if (stats != nullptr && stats->struct_size < sizeof(stk_generate_stats)) {
    return fail_c(msg, Status::InvalidArgument, "stk_generate_stats.struct_size too small: use its _INIT macro");
  }
  stk_status rc = stk_session_set_sampler(session, sampler, msg);
  if (rc != STK_OK) return rc;
  stk::Session& s = session->impl;
  const stk::TokenizerView& tok = s.model->tokenizer;
  const int32_t bos = int32_t(tok.bos_id);
  Message w = wrap(msg);
  const char* text = prompt != nullptr ? prompt : "";
  size_t n_prompt = 0;
  Status st = stk::tokenizer_encode(tok, text, std::strlen(text), true, false, s.prompt_tokens, s.prompt_capacity,
                                    &n_prompt, &w);
  if (st != Status::Ok) return to_c(st);
  if (steps == 0 || steps > s.ctx_len) steps = s.ctx_len;
  s.pos = 0;
  stk_generate_stats out = STK_GENERATE_STATS_INIT;
  out.prompt_tokens = uint32_t(n_prompt);

  // The prompt is evaluated as one batch; the pieces it prints are the same
  // ones llama2.c prints while it steps through the prompt a token at a time.
  const uint32_t m = n_prompt < steps ? uint32_t(n_prompt) : steps;
  uint64_t t0 = stk::port::now_ns();
  st = stk::session_eval(&s, s.prompt_tokens, m, nullptr, &w);
  if (st != Status::Ok) return to_c(st);
  uint64_t t1 = stk::port::now_ns();
  out.prompt_ns = t1 - t0;
  bool stop = false;
  const uint32_t last_shown = n_prompt > steps ? steps : m - 1;
  for (uint32_t i = 1; i <= last_shown && !stop; ++i) {
    size_t len = 0;
    const char* p = stk::tokenizer_decode(tok, s.prompt_tokens[i - 1], s.prompt_tokens[i], &len);
    if (on_piece != nullptr && p != nullptr) stop = on_piece(user, s.prompt_tokens[i], p, len) != 0;
  }
  if (n_prompt <= steps) {
    int32_t token = s.prompt_tokens[m - 1];
    while (!stop) {
      int32_t next = stk::sampler_sample(&s.sampler, s.logits);
      if (next == bos) break;
      ++out.generated_tokens;
      size_t len = 0;
      const char* p = stk::tokenizer_decode(tok, token, next, &len);
      if (on_piece != nullptr && p != nullptr) stop = on_piece(user, next, p, len) != 0;
      token = next;
      if (s.pos >= steps) break;
      st = stk::session_eval(&s, &token, 1, nullptr, &w);
      if (st != Status::Ok) return to_c(st);
    }
  }
  out.generate_ns = stk::port::now_ns() - t1;
  if (stats != nullptr) *stats = out;
  return STK_OK;
}

stk_status stk_model_budget_info(const stk_model* model, stk_budget_info* out_info, stk_message* msg) {
  if (model == nullptr || out_info == nullptr) return fail_c(msg, Status::InvalidArgument, "model or info is NULL");
  // index_bytes came later: a caller built before it gets the fields it knows.
  const size_t known = out_info->struct_size < sizeof(stk_budget_info) ? out_info->struct_size : sizeof(stk_budget_info);
  if (known < offsetof(stk_budget_info, index_bytes)) {
    return fail_c(msg, Status::InvalidArgument, "stk_budget_info.struct_size too small: use STK_BUDGET_INFO_INIT");
  }
  const stk::Model& m = model->impl;
  stk_budget_info i = STK_BUDGET_INFO_INIT;
  i.struct_size = out_info->struct_size;
  if (m.bitstack != nullptr) {
    i.n_blocks = m.bitstack->n_blocks;
    i.min_blocks = m.bitstack->min_blocks;
    i.n_bitstack_tensors = m.bitstack->n_tensors;
    i.index_bytes = stk::bitstack_index_bytes(m.bitstack->n_blocks, m.bitstack->n_slots);
  }
  i.fixed_bytes = m.weight_bytes;
  i.min_budget_bytes = stk::model_min_budget(m);
  i.full_budget_bytes = stk::model_full_budget(m);
  std::memcpy(static_cast<void*>(out_info), &i, known);
  return STK_OK;
}

stk_status stk_model_block_info(const stk_model* model, uint32_t index, stk_block_info* out_info, stk_message* msg) {
  if (model == nullptr || out_info == nullptr) return fail_c(msg, Status::InvalidArgument, "model or info is NULL");
  if (out_info->struct_size < sizeof(stk_block_info)) {
    return fail_c(msg, Status::InvalidArgument, "stk_block_info.struct_size too small: use STK_BLOCK_INFO_INIT");
  }
  const stk::Model& m = model->impl;
  const uint32_t n = m.bitstack != nullptr ? m.bitstack->n_blocks : 0;
  if (index >= n) {
    Message w = wrap(msg);
    return to_c(stk::fail(&w, Status::InvalidArgument, "block index %u out of range (model has %u)", index, n));
  }
  const stk::BitStackBlockRef& b = m.bitstack->blocks[index];
  const uint8_t* rec = m.tensor_table + uint64_t(m.bitstack->slot_tensor[b.slot]) * sizeof(stk::FileTensor);
  stk_block_info i = STK_BLOCK_INFO_INIT;
  i.layer = int32_t(b.slot / stk::kBitStackRolesPerLayer);
  uint16_t role;
  std::memcpy(&role, rec + offsetof(stk::FileTensor, role), sizeof role);
  i.role = role;
  i.index = b.index;
  i.rank = m.bitstack->meta[m.bitstack->slot_first[b.slot] + b.index].rank;
  i.tensor_name = reinterpret_cast<const char*>(rec + offsetof(stk::FileTensor, name));
  i.bytes = m.bitstack->prefix[index + 1] - m.bitstack->prefix[index];
  i.budget_through = stk::bitstack_budget_of(*m.bitstack, index + 1);
  *out_info = i;
  return STK_OK;
}

stk_status stk_session_set_budget(stk_session* session, uint64_t bytes, stk_budget_report* report,
                                  stk_message* msg) {
  if (session == nullptr) return fail_c(msg, Status::InvalidArgument, "session is NULL");
  if (report != nullptr && report->struct_size < sizeof(stk_budget_report)) {
    return fail_c(msg, Status::InvalidArgument, "stk_budget_report.struct_size too small: use its _INIT macro");
  }
  stk::Session& s = session->impl;
  Message w = wrap(msg);
  stk_budget_report out = STK_BUDGET_REPORT_INIT;
  if (s.block_pool == nullptr) {
    const uint64_t need = s.model->weight_bytes;
    if (bytes < need) {
      return to_c(stk::fail(&w, Status::Budget, "budget %llu bytes is below the model's minimum of %llu bytes",
                            (unsigned long long)bytes, (unsigned long long)need));
    }
    out.weight_bytes = need;
  } else {
    stk::BudgetReport r{};
    Status st = stk::block_pool_set_budget(s.block_pool, bytes, &r, &w);
    if (st != Status::Ok) return to_c(st);
    out.blocks_loaded = r.blocks_loaded;
    out.blocks_dropped = r.blocks_dropped;
    out.blocks_resident = r.blocks_resident;
    out.bytes_loaded = r.bytes_loaded;
    out.bytes_dropped = r.bytes_dropped;
    out.weight_bytes = r.weight_bytes;
  }
  if (report != nullptr) {
    out.struct_size = report->struct_size;
    *report = out;
  }
  return STK_OK;
}

stk_status stk_session_set_read_hook(stk_session* session, stk_read_hook hook, void* user, stk_message* msg) {
  if (session == nullptr) return fail_c(msg, Status::InvalidArgument, "session is NULL");
  stk::BlockPool* pool = session->impl.block_pool;
  if (pool != nullptr) pool->hook = stk::ReadHook{hook, hook != nullptr ? user : nullptr};
  return STK_OK;  // a model without blocks never reads: nothing to hook
}

}  // extern "C"

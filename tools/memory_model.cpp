#include "tools/memory_model.h"

#include <cstdlib>
#include <cstring>

#include "tools/handles.h"
#include "tools/page_memory.h"

namespace stk::host {

MemoryModel::MemoryModel(const std::vector<uint8_t>& image, PageSize pages) {
  buffer_ = alloc_pages(image.size(), pages);
  std::memcpy(buffer_, image.data(), image.size());
  stk_model_options o = STK_MODEL_OPTIONS_INIT;
  stk_message m{};
  stk_status s = stk_model_open_memory(buffer_, image.size(), &o, &model_, &m);
  if (s != STK_OK) {
    std::free(buffer_);
    check(s, m);
  }
  info_ = STK_MODEL_INFO_INIT;
  check(stk_model_get_info(model_, &info_, &m), m);
}

MemoryModel::~MemoryModel() {
  stk_model_close(model_);
  std::free(buffer_);
}

MemorySession::MemorySession(const MemoryModel& model, uint32_t threads, uint32_t max_batch, uint32_t context,
                             uint64_t max_budget) {
  stk_session_config cfg = STK_SESSION_CONFIG_INIT;
  cfg.n_threads = threads;
  cfg.max_batch = max_batch;
  cfg.context_length = context;
  cfg.max_budget_bytes = max_budget;
  stk_message m{};
  size_t bytes = 0;
  check(stk_session_arena_size(model.get(), &cfg, &bytes, &m), m);
  arena_.reset(new uint8_t[bytes]);
  check(stk_session_init(model.get(), &cfg, arena_.get(), bytes, &session_, &m), m);
}

MemorySession::~MemorySession() { stk_session_free(session_); }

}  // namespace stk::host

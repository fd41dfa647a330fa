// A .stk image held in a 64-byte aligned host buffer and opened with
// stk_model_open_memory, plus a session over it (host tools, tests, bench).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "c_api/stackrt.h"
#include "tools/page_memory.h"

namespace stk::host {

class MemoryModel {
 public:
  // pages: Huge puts the image in 2 MiB pages where the system gives them,
  // as a mapped model file's weights are (tools/page_memory.h).
  explicit MemoryModel(const std::vector<uint8_t>& image, PageSize pages = PageSize::Small);
  ~MemoryModel();
  MemoryModel(const MemoryModel&) = delete;
  MemoryModel& operator=(const MemoryModel&) = delete;
  stk_model* get() const { return model_; }
  const stk_model_info& info() const { return info_; }

 private:
  void* buffer_ = nullptr;
  stk_model* model_ = nullptr;
  stk_model_info info_;
};

class MemorySession {
 public:
  // max_budget: a BitStack model's budget (stk_session_config.max_budget_bytes);
  // the session starts at it.
  MemorySession(const MemoryModel& model, uint32_t threads, uint32_t max_batch, uint32_t context = 0,
                uint64_t max_budget = 0);
  ~MemorySession();
  MemorySession(const MemorySession&) = delete;
  MemorySession& operator=(const MemorySession&) = delete;
  stk_session* get() const { return session_; }

 private:
  std::unique_ptr<uint8_t[]> arena_;
  stk_session* session_ = nullptr;
};

}  // namespace stk::host

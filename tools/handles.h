// RAII owners of C API handles for the host tools: a failing call throws
// std::runtime_error carrying the runtime's own message.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "c_api/stackrt.h"

namespace stk::host {

inline void check(stk_status s, const stk_message& m) {
  if (s != STK_OK) throw std::runtime_error(m.text[0] ? m.text : stk_status_string(s));
}

class ModelHandle {
 public:
  explicit ModelHandle(const std::string& path, const std::string& tokenizer_override = "") {
    stk_model_options o = STK_MODEL_OPTIONS_INIT;
    if (!tokenizer_override.empty()) o.tokenizer_path = tokenizer_override.c_str();
    stk_message m{};
    check(stk_model_open_file(path.c_str(), &o, &model_, &m), m);
    info_ = STK_MODEL_INFO_INIT;
    check(stk_model_get_info(model_, &info_, &m), m);
  }
  ~ModelHandle() { stk_model_close(model_); }
  ModelHandle(const ModelHandle&) = delete;
  ModelHandle& operator=(const ModelHandle&) = delete;
  stk_model* get() const { return model_; }
  const stk_model_info& info() const { return info_; }

 private:
  stk_model* model_ = nullptr;
  stk_model_info info_;
};

class SessionHandle {
 public:
  SessionHandle(const ModelHandle& model, const stk_session_config& cfg) {
    stk_message m{};
    check(stk_session_arena_size(model.get(), &cfg, &arena_bytes_, &m), m);
    arena_.reset(new uint8_t[arena_bytes_]);
    check(stk_session_init(model.get(), &cfg, arena_.get(), arena_bytes_, &session_, &m), m);
  }
  ~SessionHandle() { stk_session_free(session_); }
  SessionHandle(const SessionHandle&) = delete;
  SessionHandle& operator=(const SessionHandle&) = delete;
  stk_session* get() const { return session_; }
  size_t arena_bytes() const { return arena_bytes_; }

 private:
  size_t arena_bytes_ = 0;
  std::unique_ptr<uint8_t[]> arena_;
  stk_session* session_ = nullptr;
};

}  // namespace stk::host

// For host tools and tests only: the runtime objects behind the C handles.
// Not part of the public ABI.
#pragma once
#include "c_api/stackrt.h"
#include "runtime/model.h"
#include "runtime/session.h"

inline stk::Model* stk_model_impl(stk_model* m) { return reinterpret_cast<stk::Model*>(m); }
inline const stk::Model* stk_model_impl(const stk_model* m) { return reinterpret_cast<const stk::Model*>(m); }
inline stk::Session* stk_session_impl(stk_session* s) { return reinterpret_cast<stk::Session*>(s); }

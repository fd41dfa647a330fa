#include "tools/model_stats.h"

#include <stdexcept>

#include "c_api/stackrt_internal.h"
#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tools/calib.h"
#include "tools/handles.h"

namespace stk::host {

double model_linear_bpw(const stk_model* model, uint64_t block_bytes) {
  stk_model_info i = STK_MODEL_INFO_INIT;
  stk_message m{};
  check(stk_model_get_info(model, &i, &m), m);
  double bits = double(block_bytes) * 8.0, n = 0;
  for (uint32_t k = 0; k < i.n_tensors; ++k) {
    stk_tensor_info t = STK_TENSOR_INFO_INIT;
    check(stk_model_tensor_info(model, k, &t, &m), m);
    if (t.rows <= 1) continue;
    bits += double(t.bytes) * 8.0;
    n += double(t.rows) * t.cols;
  }
  return n > 0 ? bits / n : 0.0;
}

std::string tensor_format_label(const stk_model* model, uint32_t index) {
  const stk::Model* m = stk_model_impl(model);
  if (index >= m->tensor_count) throw std::out_of_range("tensor index");
  const FileTensor t = model_tensor(*m, index);
  std::string s = weight_format_name(WeightFormat(t.format));
  if (is_lowbit_format(WeightFormat(t.format)) && t.params[0] != 32) s += "g" + std::to_string(t.params[0]);
  if (is_lowbitk_format(WeightFormat(t.format)) && t.params[0] != 16) s += "g" + std::to_string(t.params[0]);
  return s;
}

std::vector<std::string> select_stories(const std::vector<std::string>& all, const std::string& range) {
  const size_t colon = range.find(':');
  auto num = [&](const std::string& s, size_t fallback) -> size_t {
    if (s.empty()) return fallback;
    if (s.find_first_not_of("0123456789") != std::string::npos || s.size() > 9) {
      throw std::invalid_argument("--stories '" + range + "': expected A:B with story indices");
    }
    return size_t(std::stoul(s));
  };
  if (colon == std::string::npos) throw std::invalid_argument("--stories '" + range + "': expected A:B");
  const size_t a = num(range.substr(0, colon), 0), b = num(range.substr(colon + 1), all.size());
  if (a >= b) throw std::invalid_argument("--stories '" + range + "': empty range");
  return story_range(all, a, b);
}

}  // namespace stk::host

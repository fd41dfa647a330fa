#include "tools/calib.h"

#include <stdexcept>

#include "c_api/stackrt_internal.h"
#include "tools/host_model.h"
#include "tools/memory_model.h"
#include "tools/story_ppl.h"

namespace stk::host {
namespace {

struct Collector {
  bool shared_classifier;
  const std::set<std::string>* wanted;
  HessianMap* out;
};

void observe(void* user, uint32_t layer, TensorRole role, const float* x, size_t ldx, uint32_t n, uint32_t cols) {
  Collector& c = *static_cast<Collector*>(user);
  std::string name = (role == TensorRole::Classifier && c.shared_classifier) ? "tok_embeddings"
                                                                                : tensor_name(role, layer);
  if (!c.wanted->empty() && !c.wanted->count(name)) return;
  CalibHessian& H = (*c.out)[name];
  if (H.cols == 0) {
    H.cols = cols;
    H.h.assign(size_t(cols) * cols, 0.0);
  }
  for (uint32_t t = 0; t < n; ++t) {
    const float* xt = x + t * ldx;
    for (uint32_t i = 0; i < cols; ++i) {
      const double xi = xt[i];
      if (xi == 0) continue;
      double* row = H.h.data() + size_t(i) * cols;
      for (uint32_t j = 0; j < cols; ++j) row[j] += xi * xt[j];
    }
  }
  H.samples += n;
}

}  // namespace

HessianMap collect_hessians(const PackedModel& model, const std::vector<std::string>& stories, uint32_t threads,
                            const std::set<std::string>& wanted) {
  MemoryModel mm(serialize_stk(model));
  MemorySession ms(mm, threads, 64);
  HessianMap out;
  Collector c{model.config.shared_classifier, &wanted, &out};
  stk::Session* s = stk_session_impl(ms.get());
  s->observer = observe;
  s->observer_user = &c;
  score_stories(mm.get(), ms.get(), stories);
  s->observer = nullptr;
  return out;
}

std::vector<std::string> story_range(const std::vector<std::string>& all, size_t first, size_t last) {
  last = std::min(last, all.size());
  if (first >= last) return {};
  return std::vector<std::string>(all.begin() + long(first), all.begin() + long(last));
}

}  // namespace stk::host

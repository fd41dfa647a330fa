#include "tools/calib.h"

#include <algorithm>
#include <stdexcept>

#include "c_api/stackrt_internal.h"
#include "tools/host_model.h"
#include "tools/linalg.h"
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

struct InputCollector {
  const std::set<std::string>* wanted;
  std::map<std::string, std::vector<float>>* out;
};

void observe_inputs(void* user, uint32_t layer, TensorRole role, const float* x, size_t ldx, uint32_t n, uint32_t cols) {
  InputCollector& c = *static_cast<InputCollector*>(user);
  if (layer == kNoLayer) return;
  const std::string name = tensor_name(role, layer);
  if (!c.wanted->count(name)) return;
  std::vector<float>& v = (*c.out)[name];
  for (uint32_t t = 0; t < n; ++t) v.insert(v.end(), x + t * ldx, x + t * ldx + cols);
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

std::map<std::string, std::vector<float>> collect_inputs(const PackedModel& model,
                                                         const std::vector<std::string>& stories, uint32_t threads,
                                                         const std::set<std::string>& wanted) {
  MemoryModel mm(serialize_stk(model));
  MemorySession ms(mm, threads, 64);
  std::map<std::string, std::vector<float>> out;
  InputCollector c{&wanted, &out};
  stk::Session* s = stk_session_impl(ms.get());
  s->observer = observe_inputs;
  s->observer_user = &c;
  score_stories(mm.get(), ms.get(), stories);
  s->observer = nullptr;
  return out;
}

void dense_target(const std::vector<float>& xs, const std::vector<float>& xd, uint32_t cols, double damp,
                  std::vector<float>& w, uint32_t rows, std::vector<double>* H) {
  if (xs.size() != xd.size() || xs.size() % cols) throw std::runtime_error("dense target: input rows differ");
  const size_t T = xs.size() / cols;
  H->assign(size_t(cols) * cols, 0.0);
  std::vector<double> C(size_t(cols) * cols, 0.0);
  for (size_t t = 0; t < T; ++t) {
    const float* a = xs.data() + t * cols;
    const float* b = xd.data() + t * cols;
    for (uint32_t i = 0; i < cols; ++i) {
      if (a[i] == 0.0f) continue;
      double* h = H->data() + size_t(i) * cols;
      double* c = C.data() + size_t(i) * cols;
      for (uint32_t j = 0; j < cols; ++j) h[j] += double(a[i]) * a[j], c[j] += double(a[i]) * b[j];
    }
  }
  std::vector<double> A = *H;
  double mean_diag = 0;
  for (uint32_t i = 0; i < cols; ++i) mean_diag += A[size_t(i) * cols + i];
  mean_diag = std::max(mean_diag / cols, 1e-12);
  for (uint32_t i = 0; i < cols; ++i) A[size_t(i) * cols + i] += damp * mean_diag;
  if (!cholesky_lower(A, cols)) return;  // keep w
  std::vector<double> b(cols);
  for (uint32_t r = 0; r < rows; ++r) {
    float* wr = w.data() + size_t(r) * cols;
    for (uint32_t i = 0; i < cols; ++i) {
      double s = 0;
      for (uint32_t j = 0; j < cols; ++j) s += C[size_t(i) * cols + j] * wr[j];
      b[i] = s + damp * mean_diag * wr[i];
    }
    for (uint32_t i = 0; i < cols; ++i) {
      double s = b[i];
      for (uint32_t j = 0; j < i; ++j) s -= A[size_t(i) * cols + j] * b[j];
      b[i] = s / A[size_t(i) * cols + i];
    }
    for (uint32_t i = cols; i-- > 0;) {
      double s = b[i];
      for (uint32_t j = i + 1; j < cols; ++j) s -= A[size_t(j) * cols + i] * b[j];
      b[i] = s / A[size_t(i) * cols + i];
    }
    for (uint32_t i = 0; i < cols; ++i) wr[i] = float(b[i]);
  }
}


}  // namespace stk::host

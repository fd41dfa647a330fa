#include "tools/bitstack_pack.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "runtime/bitstack_format.h"
#include "tools/bitstack_decompose.h"
#include "tools/bitstack_distill.h"
#include "tools/teacher_samples.h"
#include "c_api/stackrt_internal.h"
#include "runtime/bitstack_index.h"
#include "tools/memory_model.h"
#include "tools/story_ppl.h"
#include "tools/calib.h"
#include "tools/gptq.h"
#include "tools/lowbit_quant.h"
#include "tools/pack.h"
#include "tools/quantize.h"

namespace stk::host {
namespace {

// The tensor whose input a linear layer shares (its activations are observed there).
TensorRole input_owner(TensorRole r) {
  switch (r) {
    case TensorRole::Wk: case TensorRole::Wv: return TensorRole::Wq;
    case TensorRole::W3: return TensorRole::W1;
    default: return r;
  }
}

struct Decomposed {
  const HostTensor* src;
  std::vector<float> in_scale;  // stored with the tensor (ones when folded)
  std::vector<BitStackBlock> blocks;
  std::vector<double> gain;     // weighted error reduction per block
  std::vector<uint64_t> bytes;  // encoded bytes per block
};

// The calibration NLL of the decomposed model with each tensor holding a
// chosen number of its blocks (set directly in the session's block pool, so
// any combination is one scoring run, whatever the file order).
class NllProbe {
 public:
  NllProbe(const PackedModel& shell, const std::vector<Decomposed>& dec, const BitStackPackOptions& o)
      : dec_(dec), calib_(o.calib), mm_(serialize_stk(with_all_blocks(shell, dec))), ms_(mm_, o.threads, 64) {}

  double nll(const std::vector<uint32_t>& counts) {
    Session* s = stk_session_impl(ms_.get());
    for (size_t i = 0; i < dec_.size(); ++i) {
      const HostTensor& t = *dec_[i].src;
      s->block_pool->tensors[t.layer * kBitStackRolesPerLayer + bitstack_role_slot(t.role)].n_loaded = counts[i];
    }
    return score_stories(mm_.get(), ms_.get(), calib_).mean_nll();
  }

 private:
  static PackedModel with_all_blocks(const PackedModel& shell, const std::vector<Decomposed>& dec) {
    PackedModel pm = shell;
    for (const Decomposed& d : dec) {
      for (size_t b = 0; b < d.blocks.size(); ++b) {
        std::vector<uint8_t> e = bitstack_encode_block(d.blocks[b], d.src->layer, d.src->role, uint32_t(b), d.src->rows, d.src->cols);
        pm.bitstack_blocks.insert(pm.bitstack_blocks.end(), e.begin(), e.end());
      }
    }
    return pm;
  }
  const std::vector<Decomposed>& dec_;
  const std::vector<std::string>& calib_;
  MemoryModel mm_;
  MemorySession ms_;
};

// Every tensor's first block, then greedily the next block of the highest
// priority(i, b): block b of tensor i.
template <typename Priority>
std::vector<uint32_t> greedy_order(const std::vector<Decomposed>& dec, Priority priority) {
  std::vector<uint32_t> order;
  std::vector<uint32_t> next(dec.size(), 1);
  for (size_t i = 0; i < dec.size(); ++i) order.push_back(uint32_t(i));
  for (;;) {
    size_t best = dec.size();
    double best_v = -HUGE_VAL;
    for (size_t i = 0; i < dec.size(); ++i) {
      if (next[i] >= dec[i].blocks.size()) continue;
      const double v = priority(i, next[i]);
      if (v > best_v) {
        best_v = v;
        best = i;
      }
    }
    if (best == dec.size()) break;
    order.push_back(uint32_t(best));
    ++next[best];
  }
  return order;
}

// "measured": replaces the proxy gains by measured ones. With every tensor
// at its full depth, drop one tensor to its first block and measure the
// calibration NLL increase; with the first-order model ΔNLL_i(b) =
// c_i * e_i(b) (e_i = its output-weighted residual energy after b blocks)
// that gives c_i, and block b's gain is c_i * (e_i(b-1) - e_i(b)).
// 1 + (tensor count) calibration runs.
void measure_gains(const PackedModel& shell, std::vector<Decomposed>& dec, const BitStackPackOptions& o,
                   const std::function<void(const std::string&)>& log) {
  NllProbe probe(shell, dec, o);
  std::vector<uint32_t> full;
  for (const Decomposed& d : dec) full.push_back(uint32_t(d.blocks.size()));
  const double base = probe.nll(full);
  std::string line = "bitstack: calibration NLL " + std::to_string(base) + "; NLL increase with one block:";
  for (size_t i = 0; i < dec.size(); ++i) {
    Decomposed& d = dec[i];
    std::vector<uint32_t> counts = full;
    counts[i] = 1;
    const double rise = probe.nll(counts) - base;
    const double c = std::max(rise, 1e-7) / d.blocks[0].residual_after;
    for (size_t b = 1; b < d.blocks.size(); ++b) d.gain[b] = c * (d.blocks[b - 1].residual_after - d.blocks[b].residual_after);
    char buf[64];
    std::snprintf(buf, sizeof buf, " %s %.4f", d.src->name.c_str(), rise);
    line += buf;
  }
  log(line);
}

// "nll", the BitStack paper's measure, for comparison: from the minimum,
// score every tensor's next block by the calibration-NLL drop it brings
// given the blocks already chosen, and append the best per byte. Scoring
// each single block costs (tensor count) calibration runs per block, so the
// best quarter of the tensors' next blocks are appended per round (8 of 35
// on stories260K): about 4 (blocks per tensor) x (tensor count) runs in all.
std::vector<uint32_t> nll_order(const PackedModel& shell, const std::vector<Decomposed>& dec, const BitStackPackOptions& o,
                                const std::function<void(const std::string&)>& log) {
  NllProbe probe(shell, dec, o);
  const size_t T = dec.size(), per_round = std::max<size_t>(1, T / 4);
  std::vector<uint32_t> counts(T, 1), order;
  for (size_t i = 0; i < T; ++i) order.push_back(uint32_t(i));
  size_t total = 0;
  for (const Decomposed& d : dec) total += d.blocks.size();
  while (order.size() < total) {
    const double at = probe.nll(counts);
    std::vector<std::pair<double, size_t>> drop_per_byte;  // negated: sorted, the best come first
    for (size_t i = 0; i < T; ++i) {
      if (counts[i] >= dec[i].blocks.size()) continue;
      std::vector<uint32_t> c = counts;
      ++c[i];
      drop_per_byte.push_back({(probe.nll(c) - at) / double(dec[i].bytes[counts[i]]), i});
    }
    std::stable_sort(drop_per_byte.begin(), drop_per_byte.end());
    for (size_t k = 0; k < drop_per_byte.size() && k < per_round; ++k) {
      order.push_back(uint32_t(drop_per_byte[k].second));
      ++counts[drop_per_byte[k].second];
    }
    log("bitstack: --order nll: " + std::to_string(order.size()) + " of " + std::to_string(total) +
        " blocks ordered, calibration NLL " + std::to_string(at));
  }
  return order;
}

}  // namespace

PackedModel pack_bitstack(const HostModel& hm, std::vector<uint8_t> tokenizer_section, const BitStackPackOptions& o) {
  auto log = [&](const std::string& s) {
    if (o.log) o.log(s);
  };
  const HostConfig& c = hm.config;
  // Second moments of every linear layer's input: d[(layer, owner role)][j].
  std::map<std::pair<uint32_t, TensorRole>, std::vector<double>> moments;
  std::map<std::pair<uint32_t, TensorRole>, std::vector<double>> hessians;  // E[x x^T], [cols][cols]
  std::map<std::string, std::vector<double>> fixed_hessians;  // the classifier's input, by tensor name (any scale)
  std::map<size_t, LowbitTensor> fixed_codes;  // the fixed low-bit matrices, by tensor index, for distillation
  if (!o.calib.empty()) {
    std::set<std::string> wanted;
    for (uint32_t l = 0; l < c.n_layers; ++l) {
      for (TensorRole r : {TensorRole::Wq, TensorRole::Wo, TensorRole::W1, TensorRole::W2}) wanted.insert(tensor_name(r, l));
    }
    for (const HostTensor& t : hm.tensors)
      if (!is_linear_role(t.role) && t.rows > 1) wanted.insert(t.name);  // the classifier's input
    PackedModel f32 = pack_uniform(hm, tokenizer_section, WeightFormat::F32);
    HessianMap hs = collect_hessians(f32, o.calib, o.threads, wanted);
    for (const HostTensor& t : hm.tensors) {
      auto it = hs.find(t.name);
      if (!is_linear_role(t.role) && it != hs.end() && it->second.samples > 0) fixed_hessians[t.name] = std::move(it->second.h);
    }
    for (uint32_t l = 0; l < c.n_layers; ++l) {
      for (TensorRole r : {TensorRole::Wq, TensorRole::Wo, TensorRole::W1, TensorRole::W2}) {
        auto it = hs.find(tensor_name(r, l));
        if (it == hs.end() || it->second.samples == 0) throw std::runtime_error("calibration saw no input for " + tensor_name(r, l));
        const CalibHessian& H = it->second;
        std::vector<double> d(H.cols);
        for (uint32_t j = 0; j < H.cols; ++j) d[j] = H.h[size_t(j) * H.cols + j] / double(H.samples);
        moments[{l, r}] = std::move(d);
        std::vector<double> full(H.h);
        for (double& x : full) x /= double(H.samples);
        hessians[{l, r}] = std::move(full);
      }
    }
    log("bitstack: calibrated on " + std::to_string(o.calib.size()) + " stories");
  }

  // Per-channel scales, and the norms with 1/s folded in.
  HostModel m = hm;  // norms are edited in this copy
  std::map<std::pair<uint32_t, TensorRole>, std::vector<double>> scales;
  for (auto& [key, d] : moments) {
    std::vector<double> s(d.size());
    double mean = 0;
    double dmax = *std::max_element(d.begin(), d.end());
    for (size_t j = 0; j < d.size(); ++j) {
      s[j] = std::pow(std::max(d[j], dmax * 1e-8 + 1e-30), o.alpha / 2);
      mean += s[j];
    }
    mean /= double(d.size());
    for (double& x : s) x /= mean;
    scales[key] = std::move(s);
  }
  for (uint32_t l = 0; l < c.n_layers && !scales.empty(); ++l) {
    for (auto [norm, owner] : {std::pair{TensorRole::AttnNorm, TensorRole::Wq}, std::pair{TensorRole::FfnNorm, TensorRole::W1}}) {
      HostTensor* t = m.find(norm, l);
      const std::vector<double>& s = scales.at({l, owner});
      for (uint32_t j = 0; j < t->cols; ++j) t->data[j] = float(double(t->data[j]) / s[j]);
    }
  }

  std::vector<Decomposed> dec;
  PackedModel pm;
  pm.config = c;
  pm.tokenizer_section = std::move(tokenizer_section);
  for (const HostTensor& t : m.tensors) {
    PackedTensor p;
    p.name = t.name;
    p.role = t.role;
    p.layer = t.layer;
    p.rows = t.rows;
    p.cols = t.cols;
    if (!is_linear_role(t.role)) {
      p.format = t.rows == 1 ? WeightFormat::F32 : o.fixed_format;
      auto h = fixed_hessians.find(t.name);
      if (h != fixed_hessians.end() && is_host_lowbit(p.format)) {
        // As the calibrated low-bit pack does: GPTQ on the classifier's
        // output error (the embedding is the classifier when they are
        // shared); the codes are kept for distillation to train.
        FormatSpec spec;
        spec.format = p.format;
        spec.group = is_lowbitk_format(p.format) ? kDefaultLowbitKGroup : kDefaultLowbitGroup;
        GptqOptions g;
        g.dynamic_groups = false;
        LowbitTensor& q = fixed_codes[pm.tensors.size()];
        q = gptq_quantize(t.data.data(), t.rows, t.cols, spec, h->second, g);
        p.data = lowbit_pack(q, p.params);
        pm.tensors.push_back(std::move(p));
        continue;
      }
      p.data = encode_weights(t.data.data(), t.rows, t.cols, p.format, p.params);
      pm.tensors.push_back(std::move(p));
      continue;
    }
    const auto key = std::make_pair(t.layer, input_owner(t.role));
    // wo and w2 have no norm to fold 1/s into, so their scale costs cols
    // floats in the file; fitted to the output (which a column scale does not
    // change for rank-1 factors: v absorbs it) they go unscaled.
    const bool explicit_scale = t.role == TensorRole::Wo || t.role == TensorRole::W2;
    const bool scaled = scales.count(key) != 0 && !(explicit_scale && o.output_fit && hessians.count(key));
    std::vector<double> s = scaled ? scales.at(key) : std::vector<double>(t.cols, 1.0);
    std::vector<float> w(t.data);
    for (uint32_t r = 0; r < t.rows; ++r) {
      for (uint32_t j = 0; j < t.cols; ++j) w[size_t(r) * t.cols + j] = float(double(w[size_t(r) * t.cols + j]) * s[j]);
    }
    Decomposed d;
    d.src = &t;
    d.in_scale.assign(t.cols, 1.0f);
    if (explicit_scale) {
      for (uint32_t j = 0; j < t.cols; ++j) d.in_scale[j] = float(1.0 / s[j]);
    }
    // Column weights turning the scaled-space residual into output error.
    std::vector<double> cw(t.cols, 1.0);
    if (moments.count(key)) {
      const std::vector<double>& dm = moments.at(key);
      for (uint32_t j = 0; j < t.cols; ++j) cw[j] = dm[j] / (s[j] * s[j]);
    }
    const uint32_t rank = o.rank ? std::min({o.rank, t.rows, t.cols}) : bitstack_default_rank(t.rows, t.cols);
    std::vector<double> hs;  // the input's second moments in the scaled space
    BitStackHessian fit;
    if (o.output_fit && hessians.count(key)) {
      hs = hessians.at(key);
      for (uint32_t i = 0; i < t.cols; ++i)
        for (uint32_t j = 0; j < t.cols; ++j) hs[size_t(i) * t.cols + j] /= s[i] * s[j];
      fit.h = hs.data();
      fit.rounds = o.fit_rounds;
      fit.depth = o.depth;
    }
    d.blocks = bitstack_decompose(w.data(), t.rows, t.cols, o.iters, rank, cw.data(), fit.h ? &fit : nullptr);
    for (const BitStackBlock& b : d.blocks) {
      d.gain.push_back(b.residual_before - b.residual_after);
      d.bytes.push_back(bitstack_block_bytes(b, t.rows, t.cols));
    }
    p.format = WeightFormat::BitStack;
    std::memset(p.params, 0, sizeof p.params);
    p.params[0] = uint32_t(d.blocks.size());
    if (explicit_scale && scaled) {
      p.params[1] = kBitStackHasInputScale;
      p.data.resize(size_t(t.cols) * 4);
      std::memcpy(p.data.data(), d.in_scale.data(), p.data.size());
    }
    pm.tensors.push_back(std::move(p));
    log("bitstack: " + t.name + " rank " + std::to_string(rank) + " relative residual after each block:" + [&] {
      std::string r;
      for (const BitStackBlock& b : d.blocks) {
        char buf[32];
        std::snprintf(buf, sizeof buf, " %.3f", std::sqrt(b.residual_after / d.blocks[0].residual_before));
        r += buf;
      }
      return r;
    }());
    dec.push_back(std::move(d));
  }

  // Global load order: every tensor's first block, then the rest by o.order.
  std::vector<uint32_t> load_order;
  if (o.order == "nll" && !o.calib.empty()) {
    load_order = nll_order(pm, dec, o, log);
  } else if (o.order == "uniform") {  // block b of every tensor before block b + 1
    load_order = greedy_order(dec, [&](size_t i, uint32_t b) { return -double(b) - double(i) / double(dec.size()); });
  } else {  // the largest gain per byte, measured or the proxy
    if (o.order == "measured" && !o.calib.empty()) measure_gains(pm, dec, o, log);
    load_order = greedy_order(dec, [&](size_t i, uint32_t b) { return dec[i].gain[b] / double(dec[i].bytes[b]); });
  }
  std::vector<uint32_t> next(dec.size(), 0);

  if (o.distill_epochs > 0 && !o.calib.empty()) {
    // The student computes with what the file will hold: the fixed tensors
    // as encoded, the norms with 1/s folded in.
    HostModel student = m;
    for (size_t i = 0; i < m.tensors.size(); ++i)
      if (!is_linear_role(m.tensors[i].role) && m.tensors[i].rows > 1) student.tensors[i].data = dequantized_tensor(pm.tensors[i]);
    std::vector<StackedTensor> stacked;
    for (Decomposed& d : dec) {
      StackedTensor st;
      st.tensor = size_t(d.src - m.tensors.data());
      st.in_scale = d.in_scale;
      st.blocks = &d.blocks;
      stacked.push_back(std::move(st));
    }
    DistillOptions dopt;
    dopt.max_epochs = o.distill_epochs;
    dopt.threads = o.threads;
    dopt.log = o.log;
    std::vector<GridTensor> grid;
    for (auto& [i, q] : fixed_codes) grid.push_back(GridTensor{i, &q});
    distill_bitstack(hm, student, stacked, grid, load_order,
                     distill_sequences(hm, pm.tokenizer_section, o.calib, o.distill_samples, o.threads), dopt);
    for (const GridTensor& g : grid) pm.tensors[g.tensor].data = lowbit_pack(*g.codes, pm.tensors[g.tensor].params);
    for (size_t i = 0; i < m.tensors.size(); ++i)
      if (m.tensors[i].rows == 1)
        pm.tensors[i].data = encode_weights(student.tensors[i].data.data(), 1, m.tensors[i].cols, WeightFormat::F32,
                                            pm.tensors[i].params);
  }

  for (uint32_t i : load_order) {
    const Decomposed& d = dec[i];
    std::vector<uint8_t> bytes =
        bitstack_encode_block(d.blocks[next[i]], d.src->layer, d.src->role, next[i], d.src->rows, d.src->cols);
    pm.bitstack_blocks.insert(pm.bitstack_blocks.end(), bytes.begin(), bytes.end());
    ++next[i];
  }
  return pm;
}

}  // namespace stk::host

#include "tools/pack_plan.h"

#include <fnmatch.h>

#include <memory>
#include <random>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tools/calib.h"
#include "tools/distill.h"
#include "tools/teacher_samples.h"
#include "tools/gptq.h"
#include "tools/kl_probe.h"
#include "tools/quantize.h"

namespace stk::host {
namespace {

void say(const PackPlanOptions& o, const std::string& s) {
  if (o.log) o.log(s);
}

// Quantizes one matrix; with a Hessian, by GPTQ. dequant (optional) gets the
// weights the runtime will see.
PackedTensor quantize_tensor(const HostTensor& t, const FormatSpec& spec, const CalibHessian* H,
                             std::vector<float>* dequant, const GptqOptions& gopt = GptqOptions(),
                             LowbitTensor* keep = nullptr) {
  PackedTensor p;
  p.name = t.name;
  p.role = t.role;
  p.layer = t.layer;
  p.rows = t.rows;
  p.cols = t.cols;
  p.format = spec.format;
  if (is_host_lowbit(spec.format)) {
    LowbitTensor q = H ? gptq_quantize(t.data.data(), t.rows, t.cols, spec, H->h, gopt)
                       : lowbit_quantize_rtn(t.data.data(), t.rows, t.cols, spec);
    p.data = lowbit_pack(q, p.params);
    if (dequant) *dequant = dequantize_lowbit(q);
    if (keep) *keep = std::move(q);
  } else {
    p.data = encode_weights(t.data.data(), t.rows, t.cols, spec.format, p.params);
    if (dequant) {
      dequant->resize(size_t(t.rows) * t.cols);
      WeightView v{spec.format, t.rows, t.cols, p.data.data(), p.data.size(),
                   {p.params[0], p.params[1], p.params[2], p.params[3]}};
      for (uint32_t r = 0; r < t.rows; ++r) weight_dequantize_row(v, r, dequant->data() + size_t(r) * t.cols);
    }
  }
  return p;
}

PackedTensor f32_tensor(const HostTensor& t) {
  FormatSpec f;
  return quantize_tensor(t, f, nullptr, nullptr);
}

// Sensitivity-greedy allocation: start every free matrix at its best
// candidate, then repeatedly take the step down (to a cheaper candidate) that
// costs the least loss per bit saved until the average fits the budget.
// With calibration, a choice's loss is measured end to end: the KL
// divergence of the model with only that tensor quantized from the f32 model,
// on the first calibration stories (losses of different tensors add up to
// first order). Without, it is the tensor's relative weight error.
void allocate_bpw(const HostModel& model, const PackPlanOptions& o, const std::vector<bool>& fixed,
                  std::vector<FormatSpec>* formats, const HessianMap* hessians, const PackedModel* f32,
                  const KlProbe* probe) {
  std::vector<FormatSpec> cands = o.candidates;
  if (cands.empty()) cands = default_bpw_candidates(o.bpw);
  double fixed_bits = 0, total_w = 0;
  struct Option { double bits, loss; };
  std::vector<std::vector<Option>> opts(model.tensors.size());
  std::vector<std::vector<size_t>> cand_index(model.tensors.size());
  std::vector<std::vector<PackedTensor>> packed(model.tensors.size());  // per option, for the joint search
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    const HostTensor& t = model.tensors[i];
    if (!is_matrix(t)) continue;
    const double nw = double(t.rows) * t.cols;
    total_w += nw;
    if (fixed[i]) {
      fixed_bits += (*formats)[i].bpw(t.rows, t.cols) * nw;
      continue;
    }
    const CalibHessian* H = nullptr;
    if (hessians) {
      auto it = hessians->find(t.name);
      if (it != hessians->end()) H = &it->second;
    }
    std::vector<double> ident;
    if (!H) {
      ident.assign(size_t(t.cols) * t.cols, 0.0);
      for (uint32_t c = 0; c < t.cols; ++c) ident[size_t(c) * t.cols + c] = 1.0;
    }
    for (size_t k = 0; k < cands.size(); ++k) {
      std::vector<float> dq;
      PackedTensor qt = quantize_tensor(t, cands[k], H, &dq, o.gptq);
      if (probe && f32) {
        PackedModel trial = *f32;
        trial.tensors[i] = qt;
        opts[i].push_back({cands[k].bpw(t.rows, t.cols) * nw, probe->kl(trial)});
        cand_index[i].push_back(k);
        packed[i].push_back(std::move(qt));
        continue;
      }
      // Relative output error (error energy over signal energy on the
      // calibration inputs): comparable between layers of different scale.
      const std::vector<double>& h = H ? H->h : ident;
      const std::vector<float> zero(size_t(t.rows) * t.cols, 0.f);
      const double loss = layer_output_error(t.data.data(), dq.data(), t.rows, t.cols, h) /
                          std::max(1e-30, layer_output_error(t.data.data(), zero.data(), t.rows, t.cols, h));
      opts[i].push_back({cands[k].bpw(t.rows, t.cols) * nw, loss});
      cand_index[i].push_back(k);
    }
    // Keep the Pareto front, ordered by decreasing bits.
    std::vector<size_t> order(opts[i].size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return opts[i][a].bits > opts[i][b].bits; });
    std::vector<Option> front;
    std::vector<size_t> front_idx, front_pos;
    for (size_t k : order) {
      while (!front.empty() && opts[i][k].loss <= front.back().loss) {
        front.pop_back(), front_idx.pop_back(), front_pos.pop_back();
      }
      front.push_back(opts[i][k]);
      front_idx.push_back(cand_index[i][k]);
      front_pos.push_back(k);
    }
    opts[i] = front;
    cand_index[i] = front_idx;
    if (!packed[i].empty()) {
      std::vector<PackedTensor> kept;
      for (size_t k : front_pos) kept.push_back(std::move(packed[i][k]));
      packed[i] = std::move(kept);
    }
  }
  std::vector<size_t> at(model.tensors.size(), 0);
  auto total_bits = [&]() {
    double b = fixed_bits;
    for (size_t i = 0; i < opts.size(); ++i)
      if (!opts[i].empty()) b += opts[i][at[i]].bits;
    return b;
  };
  while (total_bits() > o.bpw * total_w) {
    double best = INFINITY;
    size_t pick = SIZE_MAX;
    for (size_t i = 0; i < opts.size(); ++i) {
      if (opts[i].empty() || at[i] + 1 >= opts[i].size()) continue;
      const Option& a = opts[i][at[i]];
      const Option& b = opts[i][at[i] + 1];
      const double ratio = (b.loss - a.loss) / std::max(1e-9, a.bits - b.bits);
      if (ratio < best) best = ratio, pick = i;
    }
    if (pick == SIZE_MAX) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "--bpw %.3f cannot be met: the cheapest formats give %.3f bits per weight", o.bpw,
                    total_bits() / total_w);
      throw std::invalid_argument(buf);
    }
    ++at[pick];
  }
  // The last step down may overshoot: spend what is left on the upgrades
  // that buy the most loss per bit and still fit.
  for (;;) {
    const double room = o.bpw * total_w - total_bits();
    double best = 0;
    size_t pick = SIZE_MAX;
    for (size_t i = 0; i < opts.size(); ++i) {
      if (opts[i].empty() || at[i] == 0) continue;
      const Option& a = opts[i][at[i]];
      const Option& b = opts[i][at[i] - 1];
      if (b.bits - a.bits > room) continue;
      const double ratio = (a.loss - b.loss) / std::max(1e-9, b.bits - a.bits);
      if (ratio > best) best = ratio, pick = i;
    }
    if (pick == SIZE_MAX) break;
    --at[pick];
  }
  // Joint search (after EvoPress, Sieberling et al. 2024): the greedy adds
  // losses measured one tensor at a time, which misjudges many tensors
  // quantized hard at once. Mutate the allocation (one tensor a level up,
  // random others down until the budget fits) and keep a mutant when the
  // KL of the whole model, with every tensor in its chosen format, is lower.
  if (probe && f32 && o.joint_evals > 0) {
    auto joint_kl = [&](const std::vector<size_t>& a) {
      PackedModel trial = *f32;
      for (size_t i = 0; i < opts.size(); ++i)
        if (!opts[i].empty()) trial.tensors[i] = packed[i][a[i]];
      return probe->kl(trial);
    };
    std::vector<size_t> free_ids;
    for (size_t i = 0; i < opts.size(); ++i)
      if (opts[i].size() > 1) free_ids.push_back(i);
    double cur = joint_kl(at);
    const double start = cur;
    std::mt19937 rng(12345);
    const double budget = o.bpw * total_w;
    uint32_t accepted = 0;
    for (uint32_t it = 0; it < o.joint_evals && !free_ids.empty(); ++it) {
      std::vector<size_t> cand = at;
      const size_t up = free_ids[rng() % free_ids.size()];
      if (cand[up] == 0) continue;
      --cand[up];
      auto bits_of = [&](const std::vector<size_t>& a) {
        double b = fixed_bits;
        for (size_t i = 0; i < opts.size(); ++i)
          if (!opts[i].empty()) b += opts[i][a[i]].bits;
        return b;
      };
      bool ok = true;
      for (int guard = 0; bits_of(cand) > budget; ++guard) {
        const size_t dn = free_ids[rng() % free_ids.size()];
        if (dn != up && cand[dn] + 1 < opts[dn].size()) ++cand[dn];
        if (guard > 1000) { ok = false; break; }
      }
      if (!ok) continue;
      const double k = joint_kl(cand);
      if (k < cur) cur = k, at = cand, ++accepted;
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "bpw: joint search: KL %.5f -> %.5f (%u of %u mutations kept)", start, cur,
                  accepted, o.joint_evals);
    say(o, buf);
  }
  for (size_t i = 0; i < opts.size(); ++i)
    if (!opts[i].empty()) (*formats)[i] = cands[cand_index[i][at[i]]];
}

}  // namespace

const char* const kBpwFamily = "q8,q4k,q4kg32,q3k,q3kg32,q2k,q2kg32,t2k";

std::vector<FormatSpec> default_bpw_candidates(double bpw) {
  const std::vector<FormatSpec> family = parse_format_list(kBpwFamily);  // widest first
  auto nominal = [](const FormatSpec& f) { return f.bpw(64, 64 * 16); };  // whole groups: the format's own rate
  std::vector<FormatSpec> out;
  bool fits = false, spends = false;  // some candidate is at or below / at or above the target
  for (const FormatSpec& f : family) {
    if (nominal(f) >= bpw - kBpwBelow && nominal(f) <= bpw + kBpwAbove) {
      out.push_back(f);
      fits |= nominal(f) <= bpw, spends |= nominal(f) >= bpw;
    }
  }
  if (!spends) {  // a gap in the family (e.g. between q8 and q4k): the narrowest format above it too
    for (size_t i = family.size(); i-- > 0;) {
      if (nominal(family[i]) > bpw + kBpwAbove) {
        out.insert(out.begin(), family[i]);
        break;
      }
    }
  }
  if (!fits) {  // likewise the widest format below it
    for (const FormatSpec& f : family) {
      if (nominal(f) < bpw - kBpwBelow) {
        out.push_back(f);
        break;
      }
    }
  }
  if (out.empty()) out.push_back(family.back());  // below the whole family: its cheapest
  return out;
}

std::vector<FormatSpec> parse_format_list(const std::string& text) {
  std::vector<FormatSpec> out;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    out.push_back(parse_format_spec(text.substr(at, comma - at)));
    at = comma + 1;
  }
  return out;
}

LayerRule parse_layer_rule(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    throw std::invalid_argument("--layer '" + text + "': expected PATTERN=FORMAT, e.g. 'layers.*.ffn.w2=q8'");
  }
  LayerRule r;
  r.pattern = text.substr(0, eq);
  try {
    r.spec = parse_format_spec(text.substr(eq + 1));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--layer '" + text + "': " + e.what());
  }
  return r;
}

std::vector<FormatSpec> apply_rules(const HostModel& model, const PackPlanOptions& o) {
  std::vector<FormatSpec> out(model.tensors.size());
  for (size_t i = 0; i < model.tensors.size(); ++i)
    if (is_matrix(model.tensors[i])) out[i] = o.base;
  for (const LayerRule& r : o.rules) {
    bool hit = false;
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const HostTensor& t = model.tensors[i];
      if (!is_matrix(t) || fnmatch(r.pattern.c_str(), t.name.c_str(), 0) != 0) continue;
      out[i] = r.spec;
      hit = true;
    }
    if (!hit) {
      throw std::invalid_argument("--layer '" + r.pattern + "=" + r.spec.name() +
                                  "': the pattern matches no matrix (names as `stk info` prints them, e.g. "
                                  "'layers.0.attn.wq', 'layers.*.ffn.w2', 'tok_embeddings')");
    }
  }
  return out;
}

// Trains the quantized model end to end: its norm vectors, and the codes of
// every low-bit matrix by a straight-through estimator (latent weights,
// rounded to the nearest code of the matrix's fixed group grid in the
// forward pass). The group scales stay as GPTQ fitted them.
void distill_quantized(const HostModel& model, const PackPlanOptions& o, std::vector<LowbitTensor>& lowbit,
                       PackedModel* pm) {
  HostModel student = dequantized_model(*pm);
  const size_t nt = student.tensors.size();
  std::vector<std::vector<uint8_t>> trainable(nt);
  std::vector<Projection> project(nt);
  for (size_t i = 0; i < nt; ++i) {
    const HostTensor& t = student.tensors[i];
    if (!is_matrix(t) || !lowbit[i].codes.empty()) trainable[i].assign(t.data.size(), 1);
    if (lowbit[i].codes.empty()) continue;
    const LowbitTensor& q = lowbit[i];
    student.tensors[i].data = dequantize_lowbit(q);
    project[i] = [&q](const std::vector<float>& latent, std::vector<float>* eff) {
      lowbit_round_to_grid(q, latent, eff, nullptr);
    };
  }
  DistillOptions d;
  d.max_epochs = o.distill_epochs;
  d.threads = o.threads;
  d.log = o.log;
  distill(model, student, trainable, distill_sequences(model, pm->tokenizer_section, o.calib, o.distill_samples, o.threads), d,
          project);
  for (size_t i = 0; i < nt; ++i) {
    const HostTensor& t = student.tensors[i];
    if (trainable[i].empty()) continue;
    if (lowbit[i].codes.empty()) {
      pm->tensors[i] = f32_tensor(t);
      continue;
    }
    LowbitTensor& q = lowbit[i];
    lowbit_round_to_grid(q, t.data, nullptr, &q.codes);
    pm->tensors[i].data = lowbit_pack(q, pm->tensors[i].params);
  }
}

PackedModel pack_with_plan(const HostModel& model, std::vector<uint8_t> tokenizer_section, const PackPlanOptions& o) {
  std::vector<FormatSpec> formats = apply_rules(model, o);
  PackedModel pm;
  pm.config = model.config;
  pm.tokenizer_section = std::move(tokenizer_section);
  for (const HostTensor& t : model.tensors) pm.tensors.push_back(f32_tensor(t));
  const bool calibrated = !o.calib.empty();

  if (o.bpw > 0) {
    std::vector<bool> fixed(model.tensors.size(), false);
    for (const LayerRule& r : o.rules)
      for (size_t i = 0; i < model.tensors.size(); ++i)
        if (fnmatch(r.pattern.c_str(), model.tensors[i].name.c_str(), 0) == 0) fixed[i] = true;
    HessianMap h0;
    std::unique_ptr<KlProbe> probe;
    if (calibrated) {
      say(o, "bpw: collecting calibration statistics of the f32 model");
      h0 = collect_hessians(pm, o.calib, o.threads);
      probe.reset(new KlProbe(pm, std::vector<std::string>(o.calib.begin(), o.calib.begin() + long(std::min<size_t>(o.calib.size(), o.probe_stories))), o.threads));
    }
    say(o, "bpw: measuring each matrix's loss in each candidate format");
    allocate_bpw(model, o, fixed, &formats, calibrated ? &h0 : nullptr, &pm, probe.get());
  }

  if (!calibrated) {
    for (size_t i = 0; i < model.tensors.size(); ++i)
      if (is_matrix(model.tensors[i])) pm.tensors[i] = quantize_tensor(model.tensors[i], formats[i], nullptr, nullptr);
    return pm;
  }
  // Sequential GPTQ: layer by layer, each with Hessians measured on the model
  // whose earlier layers are already quantized, so later layers see (and
  // compensate for) the errors of earlier ones. Global matrices go last.
  const uint32_t L = model.config.n_layers;
  std::vector<LowbitTensor> lowbit(model.tensors.size());  // codes and group grids, for distillation
  for (uint32_t step = 0; step <= L; ++step) {
    const uint32_t layer = step < L ? step : kNoLayer;
    std::set<std::string> wanted;
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const HostTensor& t = model.tensors[i];
      if (is_matrix(t) && t.layer == layer && is_host_lowbit(formats[i].format)) wanted.insert(t.name);
    }
    HessianMap hs;
    if (!wanted.empty()) hs = collect_hessians(pm, o.calib, o.threads, wanted);
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const HostTensor& t = model.tensors[i];
      if (!is_matrix(t) || t.layer != layer) continue;
      auto it = hs.find(t.name);
      pm.tensors[i] = quantize_tensor(t, formats[i], it == hs.end() ? nullptr : &it->second, nullptr, o.gptq, &lowbit[i]);
    }
    say(o, layer == kNoLayer ? std::string("calibrated: global matrices done")
                             : "calibrated: layer " + std::to_string(layer) + " done");
  }
  if (o.distill_epochs > 0) distill_quantized(model, o, lowbit, &pm);
  return pm;
}

double linear_bpw(const PackedModel& m) {
  double bits = 0, n = 0;
  for (const PackedTensor& t : m.tensors) {
    if (t.rows <= 1) continue;
    bits += double(t.data.size()) * 8.0;
    n += double(t.rows) * t.cols;
  }
  return n > 0 ? bits / n : 0.0;
}

}  // namespace stk::host

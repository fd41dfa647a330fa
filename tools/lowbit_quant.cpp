#include "tools/lowbit_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "runtime/half.h"
#include "runtime/lowbit.h"
#include "runtime/weights.h"
#include "tools/quantize.h"

namespace stk::host {

std::string FormatSpec::name() const {
  std::string n = weight_format_name(format);
  if (is_lowbit_format(format) && group != kDefaultLowbitGroup) n += "g" + std::to_string(group);
  if (is_lowbitk_format(format) && group != kDefaultLowbitKGroup) n += "g" + std::to_string(group);
  return n;
}

double FormatSpec::bpw(uint32_t rows, uint32_t cols) const {
  uint32_t params[4] = {0, 0, 0, 0};
  if (format == WeightFormat::Q8) params[0] = kQ8Group;
  if (is_lowbit_format(format)) params[0] = group;
  if (is_lowbitk_format(format)) {
    const float one = 1.0f;
    params[0] = group;
    std::memcpy(&params[1], &one, 4);
    params[2] = kDefaultLowbitKShift;
  }
  uint64_t bytes = 0;
  if (!weight_format_bytes(format, rows, cols, params, &bytes)) throw std::invalid_argument("bad format " + name());
  return double(bytes) * 8.0 / (double(rows) * cols);
}

FormatSpec parse_format_spec(const std::string& text) {
  FormatSpec s;
  std::string base = text;
  uint32_t group = 0;
  const size_t g = text.find('g', 1);
  if (g != std::string::npos) {
    base = text.substr(0, g);
    const std::string num = text.substr(g + 1);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || num.size() > 4) {
      throw std::invalid_argument("bad group size in format '" + text + "'");
    }
    group = uint32_t(std::stoul(num));
  }
  s.format = parse_weight_format(base);
  if (is_lowbit_format(s.format)) {
    s.group = group ? group : kDefaultLowbitGroup;
    if (!lowbit_group_ok(s.group)) {
      throw std::invalid_argument("format '" + text + "': group size must be 32, 64, ..., 256");
    }
  } else if (is_lowbitk_format(s.format)) {
    s.group = group ? group : kDefaultLowbitKGroup;
    if (!lowbitk_group_ok(s.group)) {
      throw std::invalid_argument("format '" + text + "': group size must be 16, 32, 48, ..., 256");
    }
  } else if (group) {
    throw std::invalid_argument("format '" + text + "': only q4, q3, q2, t2 and their k variants take a group size");
  }
  return s;
}

float LowbitTensor::value(uint32_t r, uint32_t c) const {
  const size_t gi = size_t(r) * groups_per_row() + c / group;
  const uint32_t q = codes[size_t(r) * cols + c];
  if (is_lowbitk_format(format) && format != WeightFormat::T2K) {  // exactly as the runtime decodes it
    return d[gi] * (float(q) - float(kz[gi]) * (float(1u << lowbit_bits(format)) / 256.0f));
  }
  return lowbit_decode_value(format, q, d[gi], lowbitk_base(format) == WeightFormat::T2 ? 0.f : m[gi]);
}

uint32_t lowbit_max_code(WeightFormat f) {
  return lowbitk_base(f) == WeightFormat::T2 ? 2u : (1u << lowbit_bits(f)) - 1u;
}

void LowbitKGrid::snap(float* d, float* m, uint8_t* e, uint8_t* z) const {
  const double steps = double(1u << shift);
  const double le = *d > 0.f ? -std::log2(double(*d) / D) * steps : 255.0;
  const uint32_t ec = uint32_t(std::min(255.0, std::max(0.0, std::nearbyint(le))));
  const float dq = lowbitk_scale(D, shift, ec);
  *d = dq;
  *e = uint8_t(ec);
  if (lowbitk_base(format) == WeightFormat::T2) {
    *m = 0.f, *z = 0;
    return;
  }
  const float unit = float(1u << lowbit_bits(format)) / 256.0f;
  const double zc = std::nearbyint(-double(*m) / (double(dq) * unit));
  const uint32_t zq = uint32_t(std::min(255.0, std::max(0.0, zc)));
  *z = uint8_t(zq);
  *m = -(dq * (float(zq) * unit));
}

std::vector<float> dequantize_lowbit(const LowbitTensor& t) {
  std::vector<float> out(size_t(t.rows) * t.cols);
  for (uint32_t r = 0; r < t.rows; ++r)
    for (uint32_t c = 0; c < t.cols; ++c) out[size_t(r) * t.cols + c] = t.value(r, c);
  return out;
}

void lowbit_round_to_grid(const LowbitTensor& q, const std::vector<float>& w, std::vector<float>* eff,
                          std::vector<uint8_t>* codes) {
  const uint32_t gpr = q.groups_per_row();
  for (uint32_t r = 0; r < q.rows; ++r)
    for (uint32_t c = 0; c < q.cols; ++c) {
      const size_t g = size_t(r) * gpr + c / q.group, k = size_t(r) * q.cols + c;
      const uint32_t code = lowbit_quantize_value(q.format, w[k], q.d[g], q.m[g]);
      if (eff != nullptr) (*eff)[k] = lowbit_decode_value(q.format, code, q.d[g], q.m[g]);
      if (codes != nullptr) (*codes)[k] = uint8_t(code);
    }
}

uint32_t lowbit_quantize_value(WeightFormat f, float w, float d, float m) {
  const float maxq = float(lowbit_max_code(f));
  float q;
  if (lowbitk_base(f) == WeightFormat::T2) {
    q = d > 0.f ? std::nearbyint(w / d) + 1.0f : 1.0f;
  } else {
    q = d > 0.f ? std::nearbyint((w - m) / d) : 0.0f;
  }
  return uint32_t(std::min(maxq, std::max(0.0f, q)));
}

namespace {

float round_half(float v) { return half_to_float(float_to_half(v)); }

double group_error(WeightFormat f, const float* w, const float* imp, uint32_t n, float d, float m) {
  double e = 0.0;
  for (uint32_t i = 0; i < n; ++i) {
    const double diff = double(w[i]) - lowbit_decode_value(f, lowbit_quantize_value(f, w[i], d, m), d, m);
    e += (imp ? imp[i] : 1.0) * diff * diff;
  }
  return e;
}

// Weighted least-squares (d, m) for the codes the current (d, m) gives.
// The parameters the runtime will use: fp16, or the tensor's scale grid.
void settle(const LowbitKGrid* grid, float* d, float* m) {
  if (grid) {
    uint8_t e, z;
    grid->snap(d, m, &e, &z);
  } else {
    *d = round_half(*d);
    *m = round_half(*m);
  }
}

void refit(WeightFormat f, const float* w, const float* imp, uint32_t n, float* d, float* m,
           const LowbitKGrid* grid) {
  const bool ternary = lowbitk_base(f) == WeightFormat::T2;
  double sh = 0, sq = 0, sqq = 0, sw = 0, sqw = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const double h = imp ? imp[i] : 1.0;
    double q = double(lowbit_quantize_value(f, w[i], *d, *m));
    if (ternary) q -= 1.0;
    sh += h, sq += h * q, sqq += h * q * q, sw += h * w[i], sqw += h * q * w[i];
  }
  if (ternary) {
    if (sqq > 0) {
      *d = float(sqw / sqq), *m = 0.f;
      settle(grid, d, m);
      *m = 0.f;
    }
    return;
  }
  const double det = sqq * sh - sq * sq;
  if (std::fabs(det) <= 1e-12 * std::max(1.0, sqq * sh)) return;
  const double nd = (sqw * sh - sq * sw) / det, nm = (sqq * sw - sq * sqw) / det;
  if (nd > 0) {
    *d = float(nd), *m = float(nm);
    settle(grid, d, m);
  }
}

void lowbit_fit_group_impl(WeightFormat f, const float* w, const float* imp, uint32_t n, bool search, float* d,
                           float* m, const LowbitKGrid* grid) {
  if (lowbitk_base(f) == WeightFormat::T2) {
    double s = 0;
    for (uint32_t i = 0; i < n; ++i) s += std::fabs(w[i]);
    const float base = float(s / std::max<uint32_t>(n, 1));
    *m = 0.f;
    *d = base;
    settle(grid, d, m);
    *m = 0.f;
    if (!search || base <= 0.f) return;
    double best = group_error(f, w, imp, n, *d, 0.f);
    for (int k = 5; k <= 20; ++k) {
      float cd = base * 0.1f * float(k), cm = 0.f;
      settle(grid, &cd, &cm);
      cm = 0.f;
      refit(f, w, imp, n, &cd, &cm, grid);
      const double e = group_error(f, w, imp, n, cd, 0.f);
      if (e < best) best = e, *d = cd;
    }
    return;
  }
  uint8_t scratch_e, scratch_z;
  float lo = w[0], hi = w[0];
  for (uint32_t i = 1; i < n; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
  const float maxq = float(lowbit_max_code(f));
  auto make = [&](float l, float h, float* cd, float* cm) {
    if (grid) {  // the grid's zero points put the minimum in [-maxq * d, 0]
      l = std::min(l, 0.f), h = std::max(h, 0.f);
      *cm = l, *cd = (h - l) / maxq;
      grid->snap(cd, cm, &scratch_e, &scratch_z);
      return;
    }
    *cm = round_half(l);
    *cd = round_half((h - *cm) / maxq);
  };
  make(lo, hi, d, m);
  if (!search || hi <= lo) return;
  double best = group_error(f, w, imp, n, *d, *m);
  const float range = hi - lo;
  for (int a = 0; a <= 8; ++a) {
    for (int b = 0; b <= 8; ++b) {
      float cd, cm;
      make(lo + range * 0.025f * a, hi - range * 0.025f * b, &cd, &cm);
      if (cd <= 0.f) continue;
      for (int it = 0; it < 2; ++it) {
        const double e = group_error(f, w, imp, n, cd, cm);
        if (e < best) best = e, *d = cd, *m = cm;
        refit(f, w, imp, n, &cd, &cm, grid);
      }
      const double e = group_error(f, w, imp, n, cd, cm);
      if (e < best) best = e, *d = cd, *m = cm;
    }
  }
}

}  // namespace

void lowbit_fit_group(WeightFormat f, const float* w, const float* imp, uint32_t n, bool search, float* d, float* m,
                      const LowbitKGrid* grid, uint8_t* ecode, uint8_t* zcode) {
  lowbit_fit_group_impl(f, w, imp, n, search, d, m, grid);
  if (grid) {
    uint8_t e = 0, z = 0;
    grid->snap(d, m, &e, &z);  // already on the grid: only recovers the codes
    if (ecode) *ecode = e;
    if (zcode) *zcode = z;
  }
}

LowbitTensor lowbit_quantize_rtn(const float* w, uint32_t rows, uint32_t cols, FormatSpec spec,
                                 const float* col_importance, bool search) {
  const bool kformat = is_lowbitk_format(spec.format);
  if (!(is_lowbit_format(spec.format) && lowbit_group_ok(spec.group)) && !(kformat && lowbitk_group_ok(spec.group))) {
    throw std::invalid_argument("lowbit_quantize_rtn: not a low-bit format spec");
  }
  LowbitTensor t;
  t.format = spec.format;
  t.rows = rows, t.cols = cols, t.group = spec.group;
  const uint32_t G = t.groups_per_row();
  t.codes.assign(size_t(rows) * cols, 0);
  t.d.assign(size_t(rows) * G, 0.f);
  t.m.assign(size_t(rows) * G, 0.f);
  LowbitKGrid grid{};
  if (kformat) {
    // D: the largest plain (min/max, or absmean for ternary) group scale, with
    // head room for refits that widen a group; the 8-bit log codes then reach
    // 2^(-256/2^shift) of it.
    const bool ternary = lowbitk_base(spec.format) == WeightFormat::T2;
    double dmax = 0;
    for (uint32_t r = 0; r < rows; ++r) {
      for (uint32_t g = 0; g < G; ++g) {
        const uint32_t c0 = g * spec.group, n = std::min(cols - c0, spec.group);
        const float* x = w + size_t(r) * cols + c0;
        double lo = x[0], hi = x[0], sa = 0;
        for (uint32_t i = 0; i < n; ++i) lo = std::min<double>(lo, x[i]), hi = std::max<double>(hi, x[i]), sa += std::fabs(x[i]);
        dmax = std::max(dmax, ternary ? 2.0 * sa / n : 1.25 * (hi - lo) / lowbit_max_code(spec.format));
      }
    }
    t.kD = dmax > 0 && dmax < 1e18 ? float(dmax) : 1.0f;
    t.kshift = kDefaultLowbitKShift;
    t.ke.assign(size_t(rows) * G, 0);
    t.kz.assign(size_t(rows) * G, 0);
    grid = t.grid();
  }
  for (uint32_t r = 0; r < rows; ++r) {
    const float* row = w + size_t(r) * cols;
    for (uint32_t g = 0; g < G; ++g) {
      const uint32_t c0 = g * spec.group, n = std::min(cols - c0, spec.group);
      float& d = t.d[size_t(r) * G + g];
      float& m = t.m[size_t(r) * G + g];
      if (kformat) {
        lowbit_fit_group(spec.format, row + c0, col_importance ? col_importance + c0 : nullptr, n, search, &d, &m,
                         &grid, &t.ke[size_t(r) * G + g], &t.kz[size_t(r) * G + g]);
      } else {
        lowbit_fit_group(spec.format, row + c0, col_importance ? col_importance + c0 : nullptr, n, search, &d, &m);
      }
      for (uint32_t c = c0; c < c0 + n; ++c) {
        t.codes[size_t(r) * cols + c] = uint8_t(lowbit_quantize_value(spec.format, row[c], d, m));
      }
    }
  }
  return t;
}

namespace {

std::vector<uint8_t> lowbitk_pack(const LowbitTensor& t, uint32_t params[4]) {
  params[0] = t.group;
  std::memcpy(&params[1], &t.kD, 4);
  params[2] = t.kshift;
  LowbitKLayout L;
  if (!lowbitk_layout(t.format, t.rows, t.cols, params, &L)) throw std::invalid_argument("lowbit_pack: bad layout");
  std::vector<uint8_t> out(L.total_bytes, 0);
  for (uint32_t r = 0; r < t.rows; ++r) {
    uint8_t* row = out.data() + uint64_t(r) * L.row_code_bytes;
    for (uint32_t c = 0; c < t.cols; ++c) {
      const uint32_t q = t.codes[size_t(r) * t.cols + c];
      uint8_t* blk = row + (c / kLowbitKBlock) * L.block_bytes;
      const uint32_t j = c % kLowbitKBlock;
      if (L.bits == 4) {
        blk[j % 8] |= uint8_t(q << (j < 8 ? 0 : 4));
      } else {
        blk[j % 4] |= uint8_t((q & 3u) << (2 * (j / 4)));
        if (L.bits == 3 && (q & 4u)) blk[4 + j / 8] |= uint8_t(1u << (j % 8));
      }
    }
    uint8_t* sc = out.data() + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    for (uint32_t g = 0; g < L.groups_per_row; ++g) {
      sc[g] = t.ke[size_t(r) * L.groups_per_row + g];
      if (!L.ternary) sc[L.groups_per_row + g] = t.kz[size_t(r) * L.groups_per_row + g];
    }
  }
  return out;
}

}  // namespace

std::vector<uint8_t> lowbit_pack(const LowbitTensor& t, uint32_t params[4]) {
  std::memset(params, 0, 4 * sizeof(uint32_t));
  if (is_lowbitk_format(t.format)) return lowbitk_pack(t, params);
  params[0] = t.group;
  LowbitLayout L;
  if (!lowbit_layout(t.format, t.rows, t.cols, params, &L)) throw std::invalid_argument("lowbit_pack: bad layout");
  std::vector<uint8_t> out(L.total_bytes, 0);
  for (uint32_t r = 0; r < t.rows; ++r) {
    uint8_t* row = out.data() + uint64_t(r) * L.row_code_bytes;
    for (uint32_t c = 0; c < t.cols; ++c) {
      const uint32_t q = t.codes[size_t(r) * t.cols + c];
      uint8_t* blk = row + (c / kLowbitBlock) * L.block_bytes;
      const uint32_t j = c % kLowbitBlock;
      if (L.bits == 4) {
        blk[j % 16] |= uint8_t(q << (j < 16 ? 0 : 4));
      } else {
        blk[j % 8] |= uint8_t((q & 3u) << (2 * (j / 8)));
        if (L.bits == 3 && (q & 4u)) blk[8 + j / 8] |= uint8_t(1u << (j % 8));
      }
    }
    uint8_t* sc = out.data() + L.scales_offset + uint64_t(r) * L.row_scale_bytes;
    for (uint32_t g = 0; g < L.groups_per_row; ++g) {
      const uint16_t d = float_to_half(t.d[size_t(r) * L.groups_per_row + g]);
      const uint16_t m = float_to_half(t.m[size_t(r) * L.groups_per_row + g]);
      std::memcpy(sc + g * 2, &d, 2);
      if (L.scale_halves == 2) std::memcpy(sc + (L.groups_per_row + g) * 2, &m, 2);
    }
  }
  return out;
}

}  // namespace stk::host

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
  return n;
}

double FormatSpec::bpw(uint32_t rows, uint32_t cols) const {
  uint32_t params[4] = {0, 0, 0, 0};
  if (format == WeightFormat::Q8) params[0] = kQ8Group;
  if (is_lowbit_format(format)) params[0] = group;
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
  } else if (group) {
    throw std::invalid_argument("format '" + text + "': only q4, q3, q2 and t2 take a group size");
  }
  return s;
}

float LowbitTensor::value(uint32_t r, uint32_t c) const {
  const size_t gi = size_t(r) * groups_per_row() + c / group;
  return lowbit_decode_value(format, codes[size_t(r) * cols + c], d[gi], format == WeightFormat::T2 ? 0.f : m[gi]);
}

uint32_t lowbit_max_code(WeightFormat f) { return f == WeightFormat::T2 ? 2u : (1u << lowbit_bits(f)) - 1u; }

uint32_t lowbit_quantize_value(WeightFormat f, float w, float d, float m) {
  const float maxq = float(lowbit_max_code(f));
  float q;
  if (f == WeightFormat::T2) {
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
void refit(WeightFormat f, const float* w, const float* imp, uint32_t n, float* d, float* m) {
  double sh = 0, sq = 0, sqq = 0, sw = 0, sqw = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const double h = imp ? imp[i] : 1.0;
    double q = double(lowbit_quantize_value(f, w[i], *d, *m));
    if (f == WeightFormat::T2) q -= 1.0;
    sh += h, sq += h * q, sqq += h * q * q, sw += h * w[i], sqw += h * q * w[i];
  }
  if (f == WeightFormat::T2) {
    if (sqq > 0) *d = round_half(float(sqw / sqq));
    return;
  }
  const double det = sqq * sh - sq * sq;
  if (std::fabs(det) <= 1e-12 * std::max(1.0, sqq * sh)) return;
  const double nd = (sqw * sh - sq * sw) / det, nm = (sqq * sw - sq * sqw) / det;
  if (nd > 0) {
    *d = round_half(float(nd));
    *m = round_half(float(nm));
  }
}

}  // namespace

void lowbit_fit_group(WeightFormat f, const float* w, const float* imp, uint32_t n, bool search, float* d, float* m) {
  if (f == WeightFormat::T2) {
    double s = 0;
    for (uint32_t i = 0; i < n; ++i) s += std::fabs(w[i]);
    const float base = float(s / std::max<uint32_t>(n, 1));
    *m = 0.f;
    *d = round_half(base);
    if (!search || base <= 0.f) return;
    double best = group_error(f, w, imp, n, *d, 0.f);
    for (int k = 5; k <= 20; ++k) {
      float cd = round_half(base * 0.1f * float(k)), cm = 0.f;
      refit(f, w, imp, n, &cd, &cm);
      const double e = group_error(f, w, imp, n, cd, 0.f);
      if (e < best) best = e, *d = cd;
    }
    return;
  }
  float lo = w[0], hi = w[0];
  for (uint32_t i = 1; i < n; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
  const float maxq = float(lowbit_max_code(f));
  auto make = [&](float l, float h, float* cd, float* cm) {
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
        refit(f, w, imp, n, &cd, &cm);
      }
      const double e = group_error(f, w, imp, n, cd, cm);
      if (e < best) best = e, *d = cd, *m = cm;
    }
  }
}

LowbitTensor lowbit_quantize_rtn(const float* w, uint32_t rows, uint32_t cols, FormatSpec spec,
                                 const float* col_importance, bool search) {
  if (!is_lowbit_format(spec.format) || !lowbit_group_ok(spec.group)) {
    throw std::invalid_argument("lowbit_quantize_rtn: not a low-bit format spec");
  }
  LowbitTensor t;
  t.format = spec.format;
  t.rows = rows, t.cols = cols, t.group = spec.group;
  const uint32_t G = t.groups_per_row();
  t.codes.assign(size_t(rows) * cols, 0);
  t.d.assign(size_t(rows) * G, 0.f);
  t.m.assign(size_t(rows) * G, 0.f);
  for (uint32_t r = 0; r < rows; ++r) {
    const float* row = w + size_t(r) * cols;
    for (uint32_t g = 0; g < G; ++g) {
      const uint32_t c0 = g * spec.group, n = std::min(cols - c0, spec.group);
      float& d = t.d[size_t(r) * G + g];
      float& m = t.m[size_t(r) * G + g];
      lowbit_fit_group(spec.format, row + c0, col_importance ? col_importance + c0 : nullptr, n, search, &d, &m);
      for (uint32_t c = c0; c < c0 + n; ++c) {
        t.codes[size_t(r) * cols + c] = uint8_t(lowbit_quantize_value(spec.format, row[c], d, m));
      }
    }
  }
  return t;
}

std::vector<uint8_t> lowbit_pack(const LowbitTensor& t, uint32_t params[4]) {
  std::memset(params, 0, 4 * sizeof(uint32_t));
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

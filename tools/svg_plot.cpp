#include "tools/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace stk::host {
namespace {

constexpr double kLeft = 84, kRight = 28, kPanelTop = 30, kPanelBottom = 50;

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

void widen(Range* r) {
  if (r->empty()) {
    r->lo = 0;
    r->hi = 1;
  } else if (r->hi - r->lo <= 1e-12 * std::max(1.0, std::fabs(r->hi))) {
    const double d = std::fabs(r->hi) > 0 ? std::fabs(r->hi) * 0.1 : 1.0;
    r->lo -= d;
    r->hi += d;
  }
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) hi = lo + 1;
  if (target < 2) target = 2;
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  std::vector<double> t;
  for (double k = first; k <= last + 0.5; k += 1) {
    double v = k * step;
    if (std::fabs(v) < step * 1e-9) v = 0.0;
    t.push_back(v);
  }
  return t;
}

std::vector<double> log_ticks(double lo, double hi) {
  if (!(lo > 0)) lo = 1e-12;
  if (!(hi > lo)) hi = lo * 10;
  const int a = int(std::floor(std::log10(lo) + 1e-9)), b = int(std::ceil(std::log10(hi) - 1e-9));
  const bool fine = std::log10(hi / lo) < 2;
  std::vector<double> t;
  for (int e = a; e <= b; ++e) {
    const double d = std::pow(10.0, e);
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && !fine) continue;
      const double v = m * d;
      // Keep one tick at or below lo and one at or above hi, nothing further out.
      if (v < lo && !t.empty() && t.back() <= lo) t.clear();
      if (!t.empty() && t.back() >= hi) return t;
      t.push_back(v);
    }
  }
  return t;
}

std::string tick_label(double value, double spacing) {
  int decimals = 0;
  if (spacing > 0) decimals = std::max(0, int(-std::floor(std::log10(spacing) + 1e-9)));
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", decimals, value);
  std::string s = b;
  if (s == "-0" || s.find_first_not_of("-0.") == std::string::npos) s = "0";
  return s;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string render_svg(const PlotFigure& fig) {
  const double W = fig.width;
  const double head = fig.subtitle.empty() ? 44 : 64;
  const double H = head + fig.panels.size() * fig.panel_height + 8;
  std::string o;
  o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt(W) + "\" height=\"" + fmt(H) + "\" viewBox=\"0 0 " +
       fmt(W) + " " + fmt(H) + "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n";
  o += "<title>" + xml_escape(fig.title) + "</title>\n";
  o += "<rect x=\"0\" y=\"0\" width=\"" + fmt(W) + "\" height=\"" + fmt(H) + "\" fill=\"white\"/>\n";
  o += "<text x=\"" + fmt(W / 2) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"17\" font-weight=\"bold\">" +
       xml_escape(fig.title) + "</text>\n";
  if (!fig.subtitle.empty()) {
    o += "<text x=\"" + fmt(W / 2) + "\" y=\"46\" text-anchor=\"middle\" fill=\"#444\">" + xml_escape(fig.subtitle) +
         "</text>\n";
  }
  for (size_t pi = 0; pi < fig.panels.size(); ++pi) {
    const PlotPanel& p = fig.panels[pi];
    const double top = head + pi * fig.panel_height;
    const double x0 = kLeft, x1 = W - kRight, y0 = top + kPanelTop, y1 = top + fig.panel_height - kPanelBottom;
    const auto usable = [&](const std::pair<double, double>& pt) {
      return std::isfinite(pt.first) && std::isfinite(pt.second) && (!p.log_y || pt.second > 0);
    };
    Range xr, yr;
    for (const PlotSeries& s : p.series) {
      for (const auto& pt : s.points) {
        if (!usable(pt)) continue;
        xr.add(pt.first);
        yr.add(pt.second);
      }
    }
    if (p.y_from_zero && !p.log_y) yr.add(0.0);
    widen(&xr);
    if (!p.log_y) widen(&yr);
    const std::vector<double> xt = nice_ticks(xr.lo, xr.hi, 8);
    const std::vector<double> yt = p.log_y ? log_ticks(yr.empty() ? 1 : yr.lo, yr.empty() ? 10 : yr.hi)
                                           : nice_ticks(yr.lo, yr.hi, 5);
    const double xs = xt.size() > 1 ? xt[1] - xt[0] : 1, ys = yt.size() > 1 ? yt[1] - yt[0] : 1;
    const double xa = xt.front(), xb = xt.back();
    const auto ymap = [&](double y) { return p.log_y ? std::log10(y) : y; };
    const double ya = ymap(yt.front()), yb = ymap(yt.back());
    auto px = [&](double x) { return x0 + (x - xa) / (xb - xa) * (x1 - x0); };
    auto py = [&](double y) { return y1 - (ymap(y) - ya) / (yb - ya) * (y1 - y0); };
    const std::string clip = "plot" + std::to_string(pi);
    o += "<g class=\"panel\">\n";
    o += "<clipPath id=\"" + clip + "\"><rect x=\"" + fmt(x0) + "\" y=\"" + fmt(y0 - 2) + "\" width=\"" +
         fmt(x1 - x0) + "\" height=\"" + fmt(y1 - y0 + 4) + "\"/></clipPath>\n";
    // Grid and tick labels.
    for (double v : xt) {
      o += "<line x1=\"" + fmt(px(v)) + "\" y1=\"" + fmt(y0) + "\" x2=\"" + fmt(px(v)) + "\" y2=\"" + fmt(y1) +
           "\" stroke=\"#e3e3e3\"/>\n";
      o += "<text x=\"" + fmt(px(v)) + "\" y=\"" + fmt(y1 + 16) + "\" text-anchor=\"middle\">" + tick_label(v, xs) +
           "</text>\n";
    }
    for (double v : yt) {
      o += "<line x1=\"" + fmt(x0) + "\" y1=\"" + fmt(py(v)) + "\" x2=\"" + fmt(x1) + "\" y2=\"" + fmt(py(v)) +
           "\" stroke=\"#e3e3e3\"/>\n";
      o += "<text x=\"" + fmt(x0 - 6) + "\" y=\"" + fmt(py(v) + 4) + "\" text-anchor=\"end\">" +
           tick_label(v, p.log_y ? v : ys) + "</text>\n";
    }
    o += "<rect x=\"" + fmt(x0) + "\" y=\"" + fmt(y0) + "\" width=\"" + fmt(x1 - x0) + "\" height=\"" + fmt(y1 - y0) +
         "\" fill=\"none\" stroke=\"#333\"/>\n";
    o += "<text class=\"x-label\" x=\"" + fmt((x0 + x1) / 2) + "\" y=\"" + fmt(y1 + 36) +
         "\" text-anchor=\"middle\" font-size=\"13\">" + xml_escape(p.x_label) + "</text>\n";
    o += "<text class=\"y-label\" x=\"0\" y=\"0\" transform=\"translate(" + fmt(22) + " " + fmt((y0 + y1) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">" + xml_escape(p.y_label) + "</text>\n";
    // Series.
    for (const PlotSeries& s : p.series) {
      std::string pts;
      bool have = false;
      double prev_y = 0;
      for (const auto& pt : s.points) {
        if (!usable(pt)) continue;
        if (s.steps && have) pts += fmt(px(pt.first)) + "," + fmt(py(prev_y)) + " ";
        pts += fmt(px(pt.first)) + "," + fmt(py(pt.second)) + " ";
        prev_y = pt.second;
        have = true;
      }
      if (!have) continue;
      if (!pts.empty()) pts.pop_back();
      o += "<polyline class=\"series\" data-name=\"" + xml_escape(s.name) + "\" clip-path=\"url(#" + clip +
           ")\" fill=\"none\" stroke=\"" + xml_escape(s.color) + "\" stroke-width=\"1.8\"" +
           (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + " points=\"" + pts + "\"/>\n";
      if (s.markers) {
        for (const auto& pt : s.points) {
          if (!usable(pt)) continue;
          o += "<circle cx=\"" + fmt(px(pt.first)) + "\" cy=\"" + fmt(py(pt.second)) + "\" r=\"3.2\" fill=\"" +
               xml_escape(s.color) + "\"/>\n";
        }
      }
    }
    // Legend: one row above the plot area, right-aligned.
    double lx = x1;
    for (size_t k = p.series.size(); k-- > 0;) {
      const PlotSeries& s = p.series[k];
      lx -= 44 + 7.2 * double(s.name.size());
      const double ly = top + 16;
      o += "<g class=\"legend\"><line x1=\"" + fmt(lx) + "\" y1=\"" + fmt(ly - 4) + "\" x2=\"" + fmt(lx + 22) +
           "\" y2=\"" + fmt(ly - 4) + "\" stroke=\"" + xml_escape(s.color) + "\" stroke-width=\"2.5\"" +
           (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/><text x=\"" + fmt(lx + 26) + "\" y=\"" + fmt(ly) +
           "\">" + xml_escape(s.name) + "</text></g>\n";
    }
    o += "</g>\n";
  }
  o += "</svg>\n";
  return o;
}

}  // namespace stk::host

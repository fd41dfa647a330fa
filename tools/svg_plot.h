// A small SVG line-chart writer for the host tools: a figure of stacked
// panels, each with labelled axes, "nice" ticks, grid lines and a legend.
// Written for `stk sim`; no dependencies.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace stk::host {

struct PlotSeries {
  std::string name;   // legend text
  std::string color;  // any SVG colour, e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite points are skipped
  bool steps = false;    // draw as a step function (value holds until the next x)
  bool markers = false;  // a dot at every point
  bool dashed = false;
};

struct PlotPanel {
  std::string x_label, y_label;  // with units, e.g. "RAM budget (KB)"
  std::vector<PlotSeries> series;
  bool y_from_zero = false;  // include 0 in the y range (linear axes only)
  bool log_y = false;        // logarithmic y axis; points with y <= 0 are skipped
};

struct PlotFigure {
  std::string title, subtitle;
  std::vector<PlotPanel> panels;
  int width = 960;
  int panel_height = 300;
};

// Tick values covering [lo, hi] with a 1, 2 or 5 x 10^k spacing, about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
// Ticks of a logarithmic axis covering [lo, hi] (lo > 0): 1, 2 and 5 x 10^k when
// hi/lo < 100, else powers of ten; one tick at or below lo, one at or above hi.
std::vector<double> log_ticks(double lo, double hi);
// Shortest "%g"-style text for a tick at that spacing (e.g. 0.5, 12, 1500).
std::string tick_label(double value, double spacing);
// Escapes &, <, >, " and ' for XML text and attributes.
std::string xml_escape(const std::string& s);

std::string render_svg(const PlotFigure& fig);

}  // namespace stk::host

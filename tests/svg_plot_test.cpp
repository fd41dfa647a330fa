// tools/svg_plot and the `stk sim` figures: well-formed XML (checked by a
// tiny parser, tests/xml_check.h), ticks, labels, legends and series.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "tests/xml_check.h"
#include "tools/sim_report.h"
#include "tools/svg_plot.h"

namespace stk::host {
namespace {

TEST(XmlCheck, AcceptsWellFormedAndRejectsBrokenDocuments) {
  test::XmlCheck x;
  EXPECT_TRUE(x.parse("<?xml version=\"1.0\"?>\n<a k=\"1 &amp; 2\"><b/><c>t &lt; u</c><!-- c --></a>\n")) << x.error();
  EXPECT_EQ(x.find("a")[0]->attrs.at("k"), "1 & 2");
  EXPECT_EQ(x.find("c")[0]->text, "t < u");
  EXPECT_FALSE(x.parse("<a><b></a></b>"));
  EXPECT_FALSE(x.parse("<a>"));
  EXPECT_FALSE(x.parse("<a/><b/>"));
  EXPECT_FALSE(x.parse("<a k=1/>"));
  EXPECT_FALSE(x.parse("<a k=\"1\" k=\"2\"/>"));
  EXPECT_FALSE(x.parse("<a>x & y</a>"));
  EXPECT_FALSE(x.parse("<a k=\"<\"/>"));
  EXPECT_FALSE(x.parse("<a k=\"1\"j=\"2\"/>"));
  EXPECT_FALSE(x.parse("stray<a/>"));
}

TEST(SvgPlot, NiceTicksCoverTheRangeWithRoundSpacing) {
  std::vector<double> t = nice_ticks(0, 10, 5);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_DOUBLE_EQ(t.front(), 0);
  EXPECT_DOUBLE_EQ(t.back(), 10);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 2);
  t = nice_ticks(84.9, 382.8, 5);  // a BitStack budget range in KB
  EXPECT_LE(t.front(), 84.9);
  EXPECT_GE(t.back(), 382.8);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 50);
  t = nice_ticks(4.31, 4.62, 5);
  EXPECT_NEAR(t[1] - t[0], 0.05, 1e-12);
  EXPECT_LE(t.front(), 4.31);
  EXPECT_GE(t.back(), 4.62);
  EXPECT_EQ(tick_label(0.15000000000000002, 0.05), "0.15");
  EXPECT_EQ(tick_label(1500, 500), "1500");
  EXPECT_EQ(tick_label(-0.0, 1), "0");
  EXPECT_EQ(log_ticks(4.7, 1152), (std::vector<double>{1, 10, 100, 1000, 10000}));
  EXPECT_EQ(log_ticks(4.7, 190), (std::vector<double>{2, 5, 10, 20, 50, 100, 200}));
  EXPECT_EQ(log_ticks(10, 100), (std::vector<double>{10, 20, 50, 100}));
  EXPECT_EQ(xml_escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

TEST(SvgPlot, RendersWellFormedLabelledPanels) {
  PlotFigure f;
  f.title = "budget <&> ppl";
  f.subtitle = "sub";
  PlotPanel p;
  p.x_label = "step (scored tokens)";
  p.y_label = "memory (KB)";
  p.series.push_back({"RAM budget", "#1f77b4", {{0, 300}, {100, 120}, {200, 120}}, true, false, false});
  p.series.push_back({"resident & co", "#ff7f0e", {{0, 290}, {100, NAN}, {200, 110}}, false, true, true});
  f.panels = {p, p};
  const std::string svg = render_svg(f);
  test::XmlCheck x;
  ASSERT_TRUE(x.parse(svg)) << x.error();
  EXPECT_EQ(x.elements()[0].name, "svg");
  EXPECT_EQ(x.elements()[0].attrs.at("xmlns"), "http://www.w3.org/2000/svg");
  EXPECT_EQ(x.find("title")[0]->text, "budget <&> ppl");
  const auto lines = x.find("polyline");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]->attrs.at("data-name"), "RAM budget");
  EXPECT_EQ(lines[1]->attrs.at("data-name"), "resident & co");
  // A step series holds each value until the next x: 3 points become 5.
  std::string pts = lines[0]->attrs.at("points");
  EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), 5);
  // The NaN point is skipped.
  pts = lines[1]->attrs.at("points");
  EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), 2);
  EXPECT_EQ(x.find("circle").size(), 4u);
  int xlabels = 0, ylabels = 0, legends = 0;
  for (const auto* t : x.find("text")) {
    if (t->attrs.count("class") && t->attrs.at("class") == "x-label" && t->text == "step (scored tokens)") ++xlabels;
    if (t->attrs.count("class") && t->attrs.at("class") == "y-label" && t->text == "memory (KB)") ++ylabels;
    if (t->text == "RAM budget" || t->text == "resident & co") ++legends;
  }
  EXPECT_EQ(xlabels, 2);
  EXPECT_EQ(ylabels, 2);
  EXPECT_EQ(legends, 4);
}

SimRow row(uint64_t step, uint64_t budget, uint64_t weights, double nll, uint64_t transfer_ns = 0) {
  SimRow r;
  r.step = step;
  r.steps = 10;
  r.budget = budget;
  r.weight_bytes = weights;
  r.nll_sum = nll * 10;
  r.window_ppl = std::exp(nll);
  r.compute_ns = 1000000;
  r.transfer_ns = transfer_ns;
  return r;
}

TEST(SimFigure, TimelineHasBudgetWeightsPplAndSpeed) {
  SimResult r;
  r.rows = {row(0, 380000, 380000, 1.5), row(10, 85000, 84900, 4.0), row(20, 380000, 379000, 1.6, 5000000)};
  SimLabels l;
  l.title = "t";
  l.window = 128;
  test::XmlCheck x;
  ASSERT_TRUE(x.parse(render_svg(sim_figure(r, false, l)))) << x.error();
  std::vector<std::string> names;
  for (const auto* p : x.find("polyline")) names.push_back(p->attrs.at("data-name"));
  EXPECT_EQ(names, (std::vector<std::string>{"RAM budget", "resident weights", "ppl, last 128 tokens",
                                             "tokens/s, last 128 tokens (compute + modeled I/O)"}));
  // Budget in KB as a step line ending at the last step:
  // (0,380) (10,380) (10,85) (20,85) (20,380) (30,380) (30,380).
  const std::string budget_pts = x.find("polyline")[0]->attrs.at("points");
  EXPECT_EQ(std::count(budget_pts.begin(), budget_pts.end(), ','), 7);
  bool kb_axis = false;
  for (const auto* t : x.find("text")) kb_axis |= t->text == "memory (KB)";
  EXPECT_TRUE(kb_axis);
}

TEST(SimFigure, SweepPlotsPplAndSpeedAgainstTheBudget) {
  SimResult r;
  for (int i = 0; i < 4; ++i) {
    SimSegment s;
    s.budget = 100000 + 50000 * i;
    s.predictions = 100;
    s.nll_sum = 100 * (3.0 - 0.5 * i);
    s.compute_ns = 10000000;
    r.passes.push_back(s);
    r.rows.push_back(row(100 * i, s.budget, s.budget, 1.0));
  }
  SimLabels l;
  l.title = "sweep";
  test::XmlCheck x;
  ASSERT_TRUE(x.parse(render_svg(sim_figure(r, true, l)))) << x.error();
  const auto lines = x.find("polyline");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]->attrs.at("data-name"), "ppl over the text");
  EXPECT_EQ(lines[1]->attrs.at("data-name"), "tokens/s");
  EXPECT_EQ(x.find("circle").size(), 8u);
  int budget_axes = 0;
  for (const auto* t : x.find("text")) budget_axes += t->text == "RAM budget for weights (KB)";
  EXPECT_EQ(budget_axes, 2);
}

}  // namespace
}  // namespace stk::host

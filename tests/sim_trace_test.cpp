// `stk sim` traces: CSV parsing (good and bad files), scenarios, and their
// resolution into budget changes against a model's budget range.
#include <gtest/gtest.h>

#include <string>

#include "tools/sim_trace.h"

namespace stk::host {
namespace {

// Runs `f`, which must throw TraceError, and returns its message.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const TraceError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no TraceError";
  return "";
}

TEST(SimTrace, ParsesRowsHeaderCommentsAndUnits) {
  const std::string csv =
      "# a trace\r\n"
      "step,budget\r\n"
      "\n"
      "0, full   # start with everything\n"
      "  100 ,1.5MB\n"
      "250,512KiB\n"
      "300,min\n"
      "400,25%\n"
      "500,200000\n";
  TraceSpec t = parse_trace_csv(csv, "t.csv");
  ASSERT_EQ(t.points.size(), 6u);
  EXPECT_EQ(t.points[0].step, 0u);
  EXPECT_EQ(t.points[0].budget.kind, BudgetSpec::Full);
  EXPECT_EQ(t.points[0].line, 4u);
  EXPECT_EQ(t.points[1].step, 100u);
  EXPECT_EQ(t.points[1].budget.bytes, 1500000u);
  EXPECT_EQ(t.points[2].budget.bytes, 512u * 1024u);
  EXPECT_EQ(t.points[3].budget.kind, BudgetSpec::Min);
  EXPECT_EQ(t.points[4].budget.kind, BudgetSpec::Percent);
  EXPECT_DOUBLE_EQ(t.points[4].budget.percent, 25.0);
  EXPECT_EQ(t.points[5].budget.bytes, 200000u);
  EXPECT_EQ(t.points[5].line, 9u);
}

TEST(SimTrace, MalformedFilesNameFileLineAndProblem) {
  auto err = [](const std::string& csv) { return error_of([&] { parse_trace_csv(csv, "bad.csv"); }); };
  EXPECT_EQ(err("0,full\n10\n"), "bad.csv:2: expected 2 fields 'step,budget', found 1");
  EXPECT_EQ(err("0,full\n10,1MB,x\n"), "bad.csv:2: expected 2 fields 'step,budget', found 3");
  EXPECT_EQ(err("# c\n-5,full\n"), "bad.csv:2: step '-5' is not a non-negative integer");
  EXPECT_EQ(err("1e3,full\n"), "bad.csv:1: step '1e3' is not a non-negative integer");
  EXPECT_EQ(err("0,full\n\n20,min\n20,full\n"),
            "bad.csv:4: step 20 does not follow the previous row's step 20 (steps must increase)");
  EXPECT_NE(err("0,12 parsecs\n").find("bad.csv:1: "), std::string::npos);
  EXPECT_NE(err("0,12XB\n").find("unknown size unit 'XB'"), std::string::npos);
  EXPECT_EQ(err("0,150%\n"), "bad.csv:1: percentage '150%' is above 100%");
  EXPECT_EQ(err("0,abc%\n"), "bad.csv:1: cannot read percentage 'abc%'");
  EXPECT_EQ(err("0,\n"), "bad.csv:1: empty budget");
  EXPECT_EQ(err("# only comments\n\n"), "bad.csv: no `step,budget` rows");
  EXPECT_EQ(err("step,budget\n"), "bad.csv: no `step,budget` rows");
  // A header is only allowed first.
  EXPECT_EQ(err("0,full\nstep,budget\n"), "bad.csv:2: step 'step' is not a non-negative integer");
}

TEST(SimTrace, MissingFileAndUnknownScenario) {
  EXPECT_NE(error_of([] { parse_trace_arg("/nonexistent/trace.csv"); }).find("'/nonexistent/trace.csv'"),
            std::string::npos);
  EXPECT_EQ(error_of([] { parse_scenario("zigzag:1:2"); }),
            "unknown scenario 'zigzag' (sweep, step-down, sawtooth, random-walk)");
  EXPECT_EQ(error_of([] { parse_scenario("sweep:min:full"); }), "scenario 'sweep:min:full': expected sweep:MIN:MAX:N");
  EXPECT_EQ(error_of([] { parse_scenario("sweep:min:full:0"); }), "scenario 'sweep:min:full:0': N must be in 1..1000, got 0");
  EXPECT_EQ(error_of([] { parse_scenario("step-down:full:min:x"); }),
            "scenario 'step-down:full:min:x': AT 'x' is not a non-negative integer");
  EXPECT_EQ(error_of([] { parse_scenario("step-down:full:min:50:50"); }),
            "scenario 'step-down:full:min:50:50': BACK (50) must come after AT (50)");
  EXPECT_EQ(error_of([] { parse_scenario("sawtooth:min:full:4:5"); }),
            "scenario 'sawtooth:min:full:4:5': LEVELS (5) must not exceed PERIOD (4)");
  EXPECT_NE(error_of([] { parse_scenario("random-walk:min:lots:1"); }).find("MAX: "), std::string::npos);
  EXPECT_EQ(parse_trace_arg("sweep:10%:90%:3").kind, TraceSpec::Sweep);
}

// A model whose budgets range from 1000 (min) to 5000 (full) bytes.
constexpr uint64_t kMin = 1000, kFull = 5000;

TEST(SimTrace, ResolvesKeywordsPercentagesAndSizes) {
  EXPECT_EQ(resolve_budget(parse_budget_spec("min"), kMin, kFull), 1000u);
  EXPECT_EQ(resolve_budget(parse_budget_spec("FULL"), kMin, kFull), 5000u);
  EXPECT_EQ(resolve_budget(parse_budget_spec("max"), kMin, kFull), 5000u);
  EXPECT_EQ(resolve_budget(parse_budget_spec("0%"), kMin, kFull), 1000u);
  EXPECT_EQ(resolve_budget(parse_budget_spec("100%"), kMin, kFull), 5000u);
  EXPECT_EQ(resolve_budget(parse_budget_spec("12.5%"), kMin, kFull), 1500u);
  EXPECT_EQ(resolve_budget(parse_budget_spec("33%"), kMin, kFull), 1000u + 1320u);
  EXPECT_EQ(resolve_budget(parse_budget_spec("4KB"), kMin, kFull), 4000u);
}

TEST(SimTrace, FileScheduleStartsAtStepZeroMergesRepeatsAndIgnoresRowsPastTheEnd) {
  TraceSpec t = parse_trace_csv("10,full\n20,full\n40,2KB\n100,min\n150,full\n", "t.csv");
  Schedule s = build_schedule(t, kMin, kFull, 120);
  EXPECT_EQ(s.passes, 1u);
  EXPECT_EQ(s.total_steps, 120u);
  ASSERT_EQ(s.changes.size(), 3u);
  EXPECT_EQ(s.changes[0].step, 0u);  // the first row applies from step 0
  EXPECT_EQ(s.changes[0].budget, 5000u);
  EXPECT_EQ(s.changes[1].step, 40u);
  EXPECT_EQ(s.changes[1].budget, 2000u);
  EXPECT_EQ(s.changes[2].step, 100u);
  EXPECT_EQ(s.changes[2].budget, 1000u);
  EXPECT_EQ(s.ignored_rows, 1u);
  EXPECT_EQ(s.budget_at(39), 5000u);
  EXPECT_EQ(s.budget_at(40), 2000u);
  EXPECT_EQ(s.max_budget(), 5000u);
}

TEST(SimTrace, BudgetBelowTheMinimumNamesTheMinimumAndTheLine) {
  TraceSpec t = parse_trace_csv("0,full\n# drop\n50,900\n", "low.csv");
  EXPECT_EQ(error_of([&] { build_schedule(t, kMin, kFull, 100); }),
            "low.csv:3: budget '900' (900 bytes) is below the model's minimum of 1000 bytes (use 'min', or a "
            "percentage of the range)");
  EXPECT_NE(error_of([&] { build_schedule(parse_scenario("step-down:full:999:10"), kMin, kFull, 100); })
                .find("scenario 'step-down:full:999:10': budget '999' (999 bytes) is below the model's minimum of "
                      "1000 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([&] { build_schedule(parse_scenario("sweep:full:min:3"), kMin, kFull, 100); }).find("above MAX"),
            std::string::npos);
}

TEST(SimTrace, SweepIsOnePassPerEvenlySpacedLevel) {
  Schedule s = build_schedule(parse_scenario("sweep:min:full:5"), kMin, kFull, 70);
  EXPECT_TRUE(s.is_sweep);
  EXPECT_EQ(s.passes, 5u);
  EXPECT_EQ(s.total_steps, 350u);
  ASSERT_EQ(s.changes.size(), 5u);
  const uint64_t want[] = {1000, 2000, 3000, 4000, 5000};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(s.changes[i].step, uint64_t(i) * 70);
    EXPECT_EQ(s.changes[i].budget, want[i]);
  }
  Schedule one = build_schedule(parse_scenario("sweep:2KB:4KB:1"), kMin, kFull, 70);
  ASSERT_EQ(one.changes.size(), 1u);
  EXPECT_EQ(one.changes[0].budget, 2000u);
}

TEST(SimTrace, StepDownWithAndWithoutReturn) {
  Schedule a = build_schedule(parse_scenario("step-down:full:min:30"), kMin, kFull, 100);
  ASSERT_EQ(a.changes.size(), 2u);
  EXPECT_EQ(a.changes[1].step, 30u);
  EXPECT_EQ(a.changes[1].budget, 1000u);
  Schedule b = build_schedule(parse_scenario("step-down:4KB:50%:30:60"), kMin, kFull, 100);
  ASSERT_EQ(b.changes.size(), 3u);
  EXPECT_EQ(b.changes[0].budget, 4000u);
  EXPECT_EQ(b.changes[1].budget, 3000u);
  EXPECT_EQ(b.changes[2].step, 60u);
  EXPECT_EQ(b.changes[2].budget, 4000u);
  // Changes past the end of the run do not happen.
  Schedule c = build_schedule(parse_scenario("step-down:full:min:30:60"), kMin, kFull, 40);
  EXPECT_EQ(c.changes.size(), 2u);
}

TEST(SimTrace, SawtoothClimbsLevelsThenFalls) {
  // PERIOD 10, 4 levels: level k from step floor(10k/4) = 0, 2, 5, 7; budgets 1000, 2333, 3666, 5000.
  Schedule s = build_schedule(parse_scenario("sawtooth:min:full:10:4"), kMin, kFull, 25);
  const uint64_t steps[] = {0, 2, 5, 7, 10, 12, 15, 17, 20, 22};
  const uint64_t budgets[] = {1000, 2333, 3666, 5000, 1000, 2333, 3666, 5000, 1000, 2333};
  ASSERT_EQ(s.changes.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(s.changes[i].step, steps[i]) << i;
    EXPECT_EQ(s.changes[i].budget, budgets[i]) << i;
  }
}

TEST(SimTrace, RandomWalkMovesOneLevelPerIntervalDeterministically) {
  // 8 levels from 1400 to 4900: spacing 500.
  const Schedule a = build_schedule(parse_scenario("random-walk:1400:4900:42:10"), kMin, kFull, 1000);
  const Schedule b = build_schedule(parse_scenario("random-walk:1400:4900:42:10"), kMin, kFull, 1000);
  const Schedule c = build_schedule(parse_scenario("random-walk:1400:4900:43:10"), kMin, kFull, 1000);
  ASSERT_EQ(a.changes.size(), 100u);  // a move every 10 steps always changes the level
  EXPECT_EQ(a.changes[0].budget, 4900u);
  bool differs = false;
  for (size_t i = 0; i < a.changes.size(); ++i) {
    EXPECT_EQ(a.changes[i].step, i * 10);
    EXPECT_EQ(a.changes[i].budget, b.changes[i].budget);
    EXPECT_EQ((a.changes[i].budget - 1400) % 500, 0u);
    EXPECT_LE(a.changes[i].budget, 4900u);
    if (i > 0) {
      const int64_t d = int64_t(a.changes[i].budget) - int64_t(a.changes[i - 1].budget);
      EXPECT_TRUE(d == 500 || d == -500) << i;
    }
    if (i < c.changes.size() && c.changes[i].budget != a.changes[i].budget) differs = true;
  }
  EXPECT_TRUE(differs) << "another seed gives another walk";
}

TEST(SimTrace, ExampleTracesParseAndFitStories260kBitStack) {
  // stories260K packed with `stk pack --format bitstack` (8 blocks per layer):
  // budgets from 84912 to 382832 bytes.
  const std::string dir = std::string(STK_TEST_DATA_DIR) + "/../../examples/traces/";
  for (const char* name : {"phone-app-switch.csv", "desktop-memory-pressure.csv", "mcu-shared-sram.csv"}) {
    const TraceSpec t = parse_trace_arg(dir + name);
    const Schedule s = build_schedule(t, 84912, 382832, 6000);
    EXPECT_GE(s.changes.size(), 4u) << name;
    EXPECT_EQ(s.ignored_rows, 0u) << name;
    EXPECT_EQ(s.changes[0].step, 0u) << name;
  }
}

}  // namespace
}  // namespace stk::host

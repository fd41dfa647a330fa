// The `stk sim` driver on a real BitStack model (stories260K packed in
// memory): the bytes each budget change moves equal the deltas of the block
// prefixes computed from the model's block table, modeled time follows the
// storage formula, the scores follow the story-ppl protocol, runs are
// deterministic, and the command reports errors instead of crashing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_support.h"
#include "tests/xml_check.h"
#include "tools/bitstack_pack.h"
#include "tools/sim_report.h"
#include "tools/sim_run.h"
#include "tools/story_ppl.h"

namespace stk::host {
namespace {

// Packed once per test binary (test::cached_pack): every test runs in a
// process of its own, and the pack takes tens of seconds under qemu.
const test::ModelImage& bitstack_model() {
  static test::ModelImage img = test::to_image(test::cached_pack("stories260K-bitstack-iters4", [] {
    HostModel hm = import_llama2c(test::data_path("stories260K.bin"));
    auto tok = tokenizer_section_from_llama2c(read_file(test::data_path("tok512.bin")), hm.config.vocab_size,
                                              "tok512.bin");
    BitStackPackOptions o;
    o.iters = 4;
    return serialize_stk(pack_bitstack(hm, tok, o));
  }));
  return img;
}

struct Sim {
  stk_model* model = nullptr;
  stk_session* session = nullptr;
  std::vector<uint8_t> arena;
  explicit Sim(const test::ModelImage& img, uint64_t max_budget = 0) {
    stk_message m{};
    EXPECT_EQ(stk_model_open_memory(img.bytes.get(), img.size, nullptr, &model, &m), STK_OK) << m.text;
    stk_session_config cfg = STK_SESSION_CONFIG_INIT;
    cfg.max_batch = 64;
    cfg.max_budget_bytes = max_budget;
    size_t bytes = 0;
    EXPECT_EQ(stk_session_arena_size(model, &cfg, &bytes, &m), STK_OK) << m.text;
    arena.resize(bytes);
    EXPECT_EQ(stk_session_init(model, &cfg, arena.data(), arena.size(), &session, &m), STK_OK) << m.text;
  }
  ~Sim() {
    stk_session_free(session);
    stk_model_close(model);
  }
  stk_budget_info info() const {
    stk_budget_info bi = STK_BUDGET_INFO_INIT;
    stk_message m{};
    EXPECT_EQ(stk_model_budget_info(model, &bi, &m), STK_OK);
    return bi;
  }
};

std::vector<std::string> dev_stories(size_t n) {
  auto all = split_stories(test::read_text(test::data_path("tinystories_valid_dev.txt")));
  all.resize(std::min(all.size(), n));
  return all;
}

// Weight bytes of the first k blocks plus the fixed tensors, from the block table.
std::vector<uint64_t> prefix_budgets(stk_model* model, const stk_budget_info& bi) {
  std::vector<uint64_t> p{bi.fixed_bytes};
  for (uint32_t i = 0; i < bi.n_blocks; ++i) {
    stk_block_info b = STK_BLOCK_INFO_INIT;
    stk_message m{};
    EXPECT_EQ(stk_model_block_info(model, i, &b, &m), STK_OK);
    EXPECT_EQ(p.back() + b.bytes, b.budget_through);
    p.push_back(p.back() + b.bytes);
  }
  return p;
}

uint32_t blocks_for(const std::vector<uint64_t>& prefix, uint64_t budget) {
  uint32_t k = 0;
  while (k + 1 < prefix.size() && prefix[k + 1] <= budget) ++k;
  return k;
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

TEST(SimRun, BytesMovedAreTheBlockPrefixDeltasAndTimeFollowsTheStorageModel) {
  Sim s(bitstack_model());
  const stk_budget_info bi = s.info();
  ASSERT_GT(bi.n_blocks, 0u);
  const std::vector<uint64_t> prefix = prefix_budgets(s.model, bi);
  ASSERT_EQ(prefix.back(), bi.full_budget_bytes);
  ASSERT_EQ(prefix[bi.min_blocks], bi.min_budget_bytes);
  const uint64_t lo = bi.min_budget_bytes, span = bi.full_budget_bytes - lo;

  Schedule sch;
  sch.pass_steps = sch.total_steps = 250;
  sch.changes = {{0, bi.full_budget_bytes},  {37, lo + span * 3 / 10}, {80, lo},
                 {81, lo + span * 3 / 4},     {150, lo + 1},            {200, bi.full_budget_bytes + 12345}};
  SimOptions o;
  o.storage = sim::StorageModel{"test", 1000000, 1000, 4096, ""};  // 1 MB/s: 1000 ns per byte
  o.every = 16;
  const auto tokens = tokenize_stories(s.model, dev_stories(3));
  ASSERT_GE(count_predictions(tokens), 250u);
  SimResult r = run_sim(s.model, s.session, tokens, sch, o);

  // Cold start: the fixed tensors and the full prefix, as two ranges.
  const uint64_t fixed = bi.fixed_bytes, blocks = bi.full_budget_bytes - fixed;
  EXPECT_EQ(r.cold_start.bytes, bi.full_budget_bytes);
  EXPECT_EQ(r.cold_start.reads, ceil_div(fixed, 4096) + ceil_div(blocks, 4096));
  EXPECT_EQ(r.cold_start.ns, r.cold_start.reads * 1000 + bi.full_budget_bytes * 1000);

  uint32_t k = blocks_for(prefix, bi.full_budget_bytes);
  uint64_t loaded = 0, dropped = 0, steps = 0;
  size_t change = 1;
  for (const SimRow& row : r.rows) {
    EXPECT_EQ(row.step, steps) << "rows are consecutive";
    steps += row.steps;
    EXPECT_LE(row.steps, 16u);
    EXPECT_EQ(row.budget, sch.budget_at(row.step));
    EXPECT_EQ(sch.budget_at(row.step + row.steps - 1), row.budget) << "a row never straddles a change";
    EXPECT_LE(row.weight_bytes, row.budget);
    const bool at_change = change < sch.changes.size() && sch.changes[change].step == row.step;
    if (at_change) {
      const uint32_t k2 = blocks_for(prefix, sch.changes[change].budget);
      const uint64_t in = k2 > k ? prefix[k2] - prefix[k] : 0, out = k2 < k ? prefix[k] - prefix[k2] : 0;
      EXPECT_EQ(row.bytes_loaded, in) << "change at step " << row.step;
      EXPECT_EQ(row.bytes_dropped, out) << "change at step " << row.step;
      EXPECT_EQ(row.reads, ceil_div(in, 4096));
      EXPECT_EQ(row.transfer_ns, ceil_div(in, 4096) * 1000 + in * 1000);
      loaded += in;
      dropped += out;
      k = k2;
      ++change;
    } else {
      EXPECT_EQ(row.bytes_loaded + row.bytes_dropped + row.transfer_ns, 0u);
    }
    EXPECT_EQ(row.blocks_resident, k);
    EXPECT_EQ(row.weight_bytes, prefix[k]);
  }
  EXPECT_EQ(change, sch.changes.size());
  EXPECT_EQ(steps, 250u);
  EXPECT_EQ(r.predictions, 250u);
  EXPECT_EQ(r.changes, 5u);
  EXPECT_GT(loaded, 0u);
  EXPECT_EQ(r.device.bytes_read, bi.full_budget_bytes + loaded);
  EXPECT_EQ(r.device.bytes_dropped, dropped);
  EXPECT_EQ(r.device.resident, bi.full_budget_bytes);
  // At the minimum the model is much worse than at full size.
  double nll_min = 0, nll_full = 0;
  for (const SimSegment& seg : r.by_budget) {
    if (seg.budget == lo) nll_min = seg.nll_sum / seg.predictions;
    if (seg.budget == bi.full_budget_bytes) nll_full = seg.nll_sum / seg.predictions;
  }
  EXPECT_GT(nll_min, nll_full + 0.5);
}

TEST(SimRun, ScoresFollowTheStoryPplProtocol) {
  // A long story (> seq_len 512 tokens) exercises the window continuation.
  std::vector<std::string> st = dev_stories(8);
  std::string joined;
  for (const auto& x : st) joined += x + "\n";
  std::vector<std::string> stories = {joined, st[0]};
  Sim ref(bitstack_model());
  const PplResult want = score_stories(ref.model, ref.session, stories);
  Sim s(bitstack_model());
  const auto tokens = tokenize_stories(s.model, stories);
  ASSERT_GT(tokens[0].size(), 600u);
  Schedule sch;
  sch.pass_steps = sch.total_steps = count_predictions(tokens);
  sch.changes = {{0, s.info().full_budget_bytes}};
  SimOptions o;
  o.every = 1;  // one row per prediction: the window ppl can be checked row by row
  o.window = 50;
  SimResult r = run_sim(s.model, s.session, tokens, sch, o);
  EXPECT_EQ(r.predictions, want.predictions);
  EXPECT_NEAR(r.nll_sum / r.predictions, want.mean_nll(), 1e-5);
  ASSERT_EQ(r.rows.size(), r.predictions);
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const size_t first = i >= 49 ? i - 49 : 0;
    double sum = 0;
    for (size_t j = first; j <= i; ++j) sum += r.rows[j].nll_sum;
    ASSERT_NEAR(r.rows[i].window_ppl, std::exp(sum / double(i - first + 1)), 1e-9 * r.rows[i].window_ppl) << i;
  }
}

TEST(SimRun, SameInputsGiveTheSameCsvApartFromMeasuredColumns) {
  const auto run = [](bool timing) {
    Sim s(bitstack_model());
    const stk_budget_info bi = s.info();
    const auto tokens = tokenize_stories(s.model, dev_stories(4));
    Schedule sch = build_schedule(parse_scenario("random-walk:min:full:7:20"), bi.min_budget_bytes,
                                  bi.full_budget_bytes, 200);
    SimOptions o;
    o.storage = *sim::storage_preset("emmc");
    return sim_csv(run_sim(s.model, s.session, tokens, sch, o), timing);
  };
  const std::string a = run(false), b = run(false), t = run(true);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.substr(0, a.find('\n')),
            "step,pass,steps,budget_bytes,weight_bytes,blocks_resident,bytes_loaded,bytes_dropped,reads,transfer_us,"
            "nll,window_ppl");
  EXPECT_EQ(t.substr(0, t.find('\n')), a.substr(0, a.find('\n')) + ",compute_us,tokens_per_s");
  // Dropping the two measured columns of the timed CSV gives the untimed one.
  std::string stripped;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t eol = t.find('\n', pos);
    std::string line = t.substr(pos, eol - pos);
    line.resize(line.rfind(','));
    line.resize(line.rfind(','));
    stripped += line + "\n";
    pos = eol + 1;
  }
  EXPECT_EQ(stripped, a);
  EXPECT_GT(std::count(a.begin(), a.end(), '\n'), 12);
}

TEST(SimRun, SweepScoresTheSameTextOncePerLevel) {
  Sim s(bitstack_model());
  const stk_budget_info bi = s.info();
  const auto tokens = tokenize_stories(s.model, dev_stories(2));
  Schedule sch = build_schedule(parse_scenario("sweep:min:full:3"), bi.min_budget_bytes, bi.full_budget_bytes, 120);
  SimResult r = run_sim(s.model, s.session, tokens, sch, SimOptions{});
  ASSERT_EQ(r.passes.size(), 3u);
  for (const SimSegment& p : r.passes) EXPECT_EQ(p.predictions, 120u);
  EXPECT_EQ(r.passes[0].budget, bi.min_budget_bytes);
  EXPECT_EQ(r.passes[2].budget, bi.full_budget_bytes);
  EXPECT_GT(r.passes[0].ppl(), r.passes[1].ppl());
  EXPECT_GT(r.passes[1].ppl(), r.passes[2].ppl());
  test::XmlCheck x;
  SimLabels l;
  l.title = "sweep";
  ASSERT_TRUE(x.parse(render_svg(sim_figure(r, true, l)))) << x.error();
  EXPECT_EQ(x.find("circle").size(), 6u);
}

TEST(SimRun, FixedSizeModelsRunAtTheirSizeAndRejectLess) {
  Sim s(test::stories260k(WeightFormat::Q8));
  const stk_budget_info bi = s.info();
  EXPECT_EQ(bi.n_blocks, 0u);
  const auto tokens = tokenize_stories(s.model, dev_stories(1));
  Schedule sch = build_schedule(parse_scenario("step-down:full:2MB:40"), bi.min_budget_bytes, bi.full_budget_bytes, 80);
  SimResult r = run_sim(s.model, s.session, tokens, sch, SimOptions{});
  EXPECT_EQ(r.cold_start.bytes, bi.full_budget_bytes);
  EXPECT_EQ(r.device.bytes_read, bi.full_budget_bytes);
  for (const SimRow& row : r.rows) EXPECT_EQ(row.weight_bytes, bi.full_budget_bytes);
  try {
    build_schedule(parse_scenario("step-down:full:min:40"), bi.min_budget_bytes, bi.full_budget_bytes, 80);
    build_schedule(parse_scenario("step-down:full:100KB:40"), bi.min_budget_bytes, bi.full_budget_bytes, 80);
    ADD_FAILURE() << "100KB is below a q8 stories260K";
  } catch (const TraceError& e) {
    EXPECT_NE(std::string(e.what()).find("minimum of " + std::to_string(bi.full_budget_bytes) + " bytes"),
              std::string::npos)
        << e.what();
  }
}

TEST(SimRun, RuntimeRefusalsBecomeErrorsNotCrashes) {
  Sim s(bitstack_model());
  const stk_budget_info bi = s.info();
  const auto tokens = tokenize_stories(s.model, dev_stories(1));
  Schedule sch;
  sch.pass_steps = sch.total_steps = 40;
  sch.changes = {{0, bi.full_budget_bytes}, {20, bi.min_budget_bytes - 1}};
  try {
    run_sim(s.model, s.session, tokens, sch, SimOptions{});
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("minimum of " + std::to_string(bi.min_budget_bytes)), std::string::npos)
        << e.what();
  }
  sch.changes = {{0, bi.full_budget_bytes}};
  sch.pass_steps = sch.total_steps = 1000000;
  EXPECT_THROW(run_sim(s.model, s.session, tokens, sch, SimOptions{}), std::runtime_error);
}

// ---- The command as a user runs it ------------------------------------------

struct Cmd {
  int status;
  std::string out;
};

// stdout, and stderr too unless it goes to the file `err`.
Cmd run_stk(const std::string& args, const std::string& err = "") {
  const std::string redirect = err.empty() ? " 2>&1" : " 2>" + err;
#ifdef STK_BINARY_LAUNCHER
  const std::string cmd = std::string(STK_BINARY_LAUNCHER) + " " + STK_BINARY + " " + args + redirect;  // cross builds: qemu
#else
  const std::string cmd = std::string(STK_BINARY) + " " + args + redirect;
#endif
  Cmd c{0, ""};
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) c.out.append(buf, n);
  const int st = pclose(p);
  c.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return c;
}

class SimCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("stk_sim_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    const test::ModelImage& img = bitstack_model();
    std::ofstream(dir_ / "m.stk", std::ios::binary).write(reinterpret_cast<const char*>(img.bytes.get()), img.size);
    std::ofstream text(dir_ / "text.txt", std::ios::binary);
    for (const std::string& st : dev_stories(6)) text << st << "\n\n";
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string path(const char* name) { return (dir_ / name).string(); }
  static std::string model_and_text() {
    return path("m.stk") + " --text " + path("text.txt");
  }
  static std::filesystem::path dir_;
};
std::filesystem::path SimCli::dir_;

TEST_F(SimCli, MalformedTraceNamesFileLineAndProblem) {
  std::ofstream(path("bad.csv")) << "step,budget\n0,full\n100,lots\n";
  Cmd c = run_stk("sim " + model_and_text() + " --trace " + path("bad.csv"));
  EXPECT_EQ(c.status, 1) << c.out;
  EXPECT_NE(c.out.find("bad.csv:3: cannot read size 'lots'"), std::string::npos) << c.out;
  EXPECT_EQ(std::count(c.out.begin(), c.out.end(), '\n'), 1) << c.out;
}

TEST_F(SimCli, BudgetBelowTheMinimumNamesTheMinimum) {
  Sim s(bitstack_model());
  const uint64_t min = s.info().min_budget_bytes;
  Cmd c = run_stk("sim " + model_and_text() + " --trace step-down:full:1KB:10");
  EXPECT_EQ(c.status, 1) << c.out;
  EXPECT_NE(c.out.find("below the model's minimum of " + std::to_string(min) + " bytes"), std::string::npos) << c.out;
  c = run_stk("sim " + model_and_text() + " --trace step-down:full:min:10 --storage floppy");
  EXPECT_EQ(c.status, 2) << c.out;
  EXPECT_NE(c.out.find("unknown --storage 'floppy'"), std::string::npos) << c.out;
}

TEST_F(SimCli, WritesCsvSvgAndSummary) {
  std::ofstream(path("t.csv")) << "step,budget\n0,full\n60,min\n120,60%\n";
  Cmd c = run_stk("sim " + model_and_text() + " --trace " + path("t.csv") + " --tokens 200 --read-mbps 40 " +
                  "--latency-us 700 --csv " + path("o.csv") + " --svg " + path("o.svg") + " --no-timing");
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("run: 200 steps, 1 passes, 2 budget changes"), std::string::npos) << c.out;
  const std::string csv = test::read_text(path("o.csv"));
  EXPECT_EQ(csv.substr(0, 5), "step,");
  EXPECT_EQ(csv.find("compute_us"), std::string::npos);
  test::XmlCheck x;
  ASSERT_TRUE(x.parse(test::read_text(path("o.svg")))) << x.error();
  EXPECT_EQ(x.find("polyline").size(), 4u);
}

// `stk run --budget-at`: the budget drops to the minimum before position 20
// and returns to full before 40. The text must be the one a plain
// eval/sample loop with the same budget changes produces, and stderr must
// report exactly the blocks between the two prefixes moving each way.
TEST_F(SimCli, RunChangesTheBudgetMidGeneration) {
  Sim s(bitstack_model());
  const stk_budget_info bi = s.info();
  ASSERT_GT(bi.n_blocks, bi.min_blocks);
  std::string expected;
  int32_t token = 1;  // BOS at position 0
  stk_message m{};
  ASSERT_EQ(stk_session_set_sampler(s.session, nullptr, &m), STK_OK) << m.text;  // greedy, as --temp 0
  for (uint32_t pos = 0; pos < 60; ++pos) {
    if (pos == 20) ASSERT_EQ(stk_session_set_budget(s.session, bi.min_budget_bytes, nullptr, &m), STK_OK) << m.text;
    if (pos == 40) ASSERT_EQ(stk_session_set_budget(s.session, bi.full_budget_bytes, nullptr, &m), STK_OK) << m.text;
    ASSERT_EQ(stk_session_eval(s.session, &token, 1, nullptr, &m), STK_OK) << m.text;
    int32_t next = 0;
    ASSERT_EQ(stk_session_sample(s.session, &next, &m), STK_OK) << m.text;
    if (next == 1) break;
    size_t len = 0;
    const char* piece = stk_token_piece(s.model, token, next, &len);
    if (piece != nullptr && stk_piece_is_printable(piece, len)) expected.append(piece, len);
    token = next;
  }
  Cmd c = run_stk("run " + path("m.stk") + " -n 60 --temp 0 --budget-at 40:full --budget-at 20:min", path("run.err"));
  const std::string err = test::read_text(path("run.err"));
  ASSERT_EQ(c.status, 0) << err;
  EXPECT_EQ(c.out, expected + "\n");
  const uint32_t moved = bi.n_blocks - bi.min_blocks;
  const uint64_t bytes = bi.full_budget_bytes - bi.min_budget_bytes;
  const std::string down = "[position 20: budget " + std::to_string(bi.min_budget_bytes) +
                           ": loaded 0 blocks (0 bytes), dropped " + std::to_string(moved) + " (" +
                           std::to_string(bytes) + " bytes); " + std::to_string(bi.min_blocks) + " resident";
  const std::string up = "[position 40: budget " + std::to_string(bi.full_budget_bytes) + ": loaded " +
                         std::to_string(moved) + " blocks (" + std::to_string(bytes) + " bytes), dropped 0 (0 bytes); " +
                         std::to_string(bi.n_blocks) + " resident";
  EXPECT_NE(err.find(down), std::string::npos) << err;
  EXPECT_NE(err.find(up), std::string::npos) << err;
  EXPECT_LT(err.find(down), err.find(up)) << err;
  const Cmd unchanged = run_stk("run " + path("m.stk") + " -n 60 --temp 0", path("plain.err"));
  EXPECT_NE(unchanged.out, c.out) << "the minimum budget's blocks give another text";

  // Refused up front, naming the minimum; nothing is generated.
  c = run_stk("run " + path("m.stk") + " -n 60 --budget-at 20:1KB");
  EXPECT_EQ(c.status, 2) << c.out;
  EXPECT_NE(c.out.find("below the model's minimum budget of " + std::to_string(bi.min_budget_bytes) + " bytes"),
            std::string::npos)
      << c.out;
}

}  // namespace
}  // namespace stk::host

// End-to-end distillation (tools/distill.h): the hand-written backward pass
// against finite differences, the host forward pass against the runtime's,
// and training that lowers the held-back KL while pruned weights stay zero.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "test_support.h"
#include "tools/bitstack_distill.h"
#include "tools/distill.h"
#include "tools/calib.h"
#include "tools/memory_model.h"
#include "tools/story_ppl.h"

namespace {

using stk::TensorRole;
using stk::host::HostModel;
using stk::host::HostTensor;

// A random model with every tensor, grouped-query attention and a shared
// classifier; norms near 1 so that no path is degenerate.
HostModel random_model(uint32_t seed) {
  HostModel m;
  m.config = {16, 24, 2, 4, 2, 19, 16, true};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.4f);
  auto add = [&](TensorRole role, uint32_t layer, uint32_t rows, uint32_t cols, bool norm) {
    HostTensor t{stk::host::tensor_name(role, layer), role, layer, rows, cols, {}};
    for (size_t i = 0; i < size_t(rows) * cols; ++i) t.data.push_back(norm ? 1.0f + 0.5f * nd(rng) : nd(rng));
    m.tensors.push_back(std::move(t));
  };
  const uint32_t dim = 16, hidden = 24, kv = 8;
  add(TensorRole::TokenEmbedding, stk::kNoLayer, 19, dim, false);
  for (uint32_t l = 0; l < 2; ++l) {
    add(TensorRole::AttnNorm, l, 1, dim, true);
    add(TensorRole::Wq, l, dim, dim, false);
    add(TensorRole::Wk, l, kv, dim, false);
    add(TensorRole::Wv, l, kv, dim, false);
    add(TensorRole::Wo, l, dim, dim, false);
    add(TensorRole::FfnNorm, l, 1, dim, true);
    add(TensorRole::W1, l, hidden, dim, false);
    add(TensorRole::W2, l, dim, hidden, false);
    add(TensorRole::W3, l, hidden, dim, false);
  }
  add(TensorRole::FinalNorm, stk::kNoLayer, 1, dim, true);
  return m;
}

// The first n dev stories, tokenized for `model` (stories260K).
std::vector<std::vector<int32_t>> first_stories(const HostModel& model, size_t n) {
  const auto tok = stk::host::tokenizer_section_from_llama2c(stk::host::read_file(stk::test::data_path("tok512.bin")),
                                                             model.config.vocab_size, "tok512.bin");
  const auto stories = stk::host::split_stories(stk::test::read_text(stk::test::data_path("tinystories_valid_dev.txt")));
  return stk::host::tokenize_stories(stk::host::pack_uniform(model, tok, stk::WeightFormat::F32),
                                     stk::host::story_range(stories, 0, n));
}

double loss_of(const HostModel& m, const std::vector<int32_t>& tokens, const std::vector<float>& teacher) {
  std::vector<std::vector<float>> g;
  return stk::host::kl_loss_and_gradients(m, tokens, teacher, &g);
}

TEST(Distill, GradientsMatchFiniteDifferencesForEveryTensor) {
  const HostModel teacher = random_model(1);
  HostModel student = random_model(2);
  const std::vector<int32_t> tokens = {1, 7, 3, 18, 0, 7, 7, 12, 5, 2, 9};
  const std::vector<float> tlp = stk::host::model_log_probs(teacher, tokens);
  std::vector<std::vector<float>> g;
  stk::host::kl_loss_and_gradients(student, tokens, tlp, &g);
  ASSERT_EQ(g.size(), student.tensors.size());
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (size_t i = 0; i < student.tensors.size(); ++i) {
    // Directional derivative along a random direction, central differences
    // in double-checked float: the relative error of a wrong term in any
    // entry's gradient shows up here.
    std::vector<float>& w = student.tensors[i].data;
    const std::vector<float> w0 = w;
    std::vector<float> v(w.size());
    double analytic = 0;
    for (size_t k = 0; k < w.size(); ++k) v[k] = nd(rng), analytic += double(v[k]) * g[i][k];
    const float h = 2e-3f;
    for (size_t k = 0; k < w.size(); ++k) w[k] = w0[k] + h * v[k];
    const double up = loss_of(student, tokens, tlp);
    for (size_t k = 0; k < w.size(); ++k) w[k] = w0[k] - h * v[k];
    const double down = loss_of(student, tokens, tlp);
    w = w0;
    const double numeric = (up - down) / (2.0 * h);
    EXPECT_NEAR(analytic, numeric, 0.02 * std::fabs(numeric) + 1e-3) << student.tensors[i].name;
  }
}

TEST(Distill, HostForwardMatchesTheRuntime) {
  const HostModel hm = stk::host::import_llama2c(stk::test::data_path("stories260K.bin"));
  const auto tok = stk::host::tokenizer_section_from_llama2c(stk::host::read_file(stk::test::data_path("tok512.bin")),
                                                             hm.config.vocab_size, "tok512.bin");
  const stk::host::PackedModel pm = stk::host::pack_uniform(hm, tok, stk::WeightFormat::F32);
  const auto stories = stk::host::split_stories(stk::test::read_text(stk::test::data_path("tinystories_valid_dev.txt")));
  const auto seqs = stk::host::tokenize_stories(pm, {stories[0]});
  ASSERT_EQ(seqs.size(), 1u);
  const std::vector<int32_t>& t = seqs[0];
  ASSERT_GT(t.size(), 50u);
  const std::vector<float> host = stk::host::model_log_probs(hm, t);

  stk::host::MemoryModel mm(stk::host::serialize_stk(pm));
  stk::host::MemorySession ms(mm, 1, 64);
  const uint32_t vocab = hm.config.vocab_size;
  std::vector<float> logits(t.size() * vocab);
  stk_message msg{};
  ASSERT_EQ(stk_session_eval(ms.get(), t.data(), uint32_t(t.size()), logits.data(), &msg), STK_OK) << msg.text;
  double worst = 0;
  for (size_t p = 0; p < t.size(); ++p) {
    const float* z = &logits[p * vocab];
    double mx = z[0], s = 0;
    for (uint32_t i = 1; i < vocab; ++i) mx = std::max(mx, double(z[i]));
    for (uint32_t i = 0; i < vocab; ++i) s += std::exp(double(z[i]) - mx);
    for (uint32_t i = 0; i < vocab; ++i)
      worst = std::max(worst, std::fabs(double(z[i]) - mx - std::log(s) - host[p * vocab + i]));
  }
  EXPECT_LT(worst, 2e-3);
}

TEST(Distill, TrainingLowersHeldBackKlAndKeepsMasks) {
  if (stk::test::kEmulationSizes) GTEST_SKIP() << "packer-side training, seconds on the host and many minutes under qemu";
  const HostModel teacher = stk::host::import_llama2c(stk::test::data_path("stories260K.bin"));
  const auto seqs = first_stories(teacher, 16);
  // Student: layer 0's w1 with every other weight zeroed (a crude 1:2 mask),
  // trained on its kept weights; everything else frozen.
  HostModel student = teacher;
  std::vector<std::vector<uint8_t>> trainable(student.tensors.size());
  size_t w1 = 0;
  for (size_t i = 0; i < student.tensors.size(); ++i)
    if (student.tensors[i].role == TensorRole::W1 && student.tensors[i].layer == 0) w1 = i;
  trainable[w1].assign(student.tensors[w1].data.size(), 0);
  for (size_t k = 0; k < trainable[w1].size(); ++k) {
    trainable[w1][k] = k % 2 == 0;
    if (k % 2) student.tensors[w1].data[k] = 0.0f;
  }
  const HostModel before = student;
  stk::host::DistillOptions opt;
  opt.max_epochs = 4;
  opt.lr = 3e-3;
  opt.threads = 2;
  const stk::host::DistillReport rep = stk::host::distill(teacher, student, trainable, seqs, opt);
  EXPECT_GT(rep.kl_before, 0.0);
  EXPECT_LT(rep.kl_after, rep.kl_before * 0.95);
  EXPECT_GE(rep.best_epoch, 1u);
  size_t changed = 0;
  for (size_t k = 0; k < trainable[w1].size(); ++k) {
    if (k % 2) EXPECT_EQ(student.tensors[w1].data[k], 0.0f);
    else changed += student.tensors[w1].data[k] != before.tensors[w1].data[k];
  }
  EXPECT_GT(changed, trainable[w1].size() / 4);
  for (size_t i = 0; i < student.tensors.size(); ++i)
    if (i != w1) EXPECT_EQ(student.tensors[i].data, before.tensors[i].data) << student.tensors[i].name;

  // The same run with one thread gives the same weights.
  HostModel again = before;
  opt.threads = 1;
  stk::host::distill(teacher, again, trainable, seqs, opt);
  EXPECT_EQ(again.tensors[w1].data, student.tensors[w1].data);
}

}  // namespace

namespace {

TEST(Distill, BitStackFactorsTrainOverBudgetsAndKeepTheSigns) {
  if (stk::test::kEmulationSizes) GTEST_SKIP() << "packer-side training, seconds on the host and many minutes under qemu";
  const HostModel teacher = stk::host::import_llama2c(stk::test::data_path("stories260K.bin"));
  const auto seqs = first_stories(teacher, 16);
  // One tensor (layer 1's gate) as three sign blocks; the rest stays f32.
  size_t w1 = 0;
  for (size_t i = 0; i < teacher.tensors.size(); ++i)
    if (teacher.tensors[i].role == TensorRole::W1 && teacher.tensors[i].layer == 1) w1 = i;
  const HostTensor& t = teacher.tensors[w1];
  const std::vector<stk::host::BitStackBlock> start = stk::host::bitstack_decompose(t.data.data(), t.rows, t.cols, 3, 1);
  auto run = [&](uint32_t threads, std::vector<stk::host::BitStackBlock>* blocks, HostModel* student) {
    *blocks = start;
    *student = teacher;
    std::vector<stk::host::StackedTensor> st(1);
    st[0].tensor = w1;
    st[0].blocks = blocks;
    stk::host::DistillOptions opt;
    opt.max_epochs = 3;
    opt.threads = threads;
    std::vector<stk::host::GridTensor> grid;
    return stk::host::distill_bitstack(teacher, *student, st, grid, {0, 0, 0}, seqs, opt);
  };
  std::vector<stk::host::BitStackBlock> blocks, again;
  HostModel student, student2;
  const stk::host::DistillReport rep = run(2, &blocks, &student);
  EXPECT_LT(rep.kl_after, rep.kl_before * 0.95);
  ASSERT_EQ(blocks.size(), start.size());
  bool factors_moved = false;
  for (size_t b = 0; b < blocks.size(); ++b) {
    EXPECT_EQ(blocks[b].signs, start[b].signs);
    factors_moved |= blocks[b].u != start[b].u || blocks[b].v != start[b].v;
  }
  EXPECT_TRUE(factors_moved);
  // The student computes with the full stack: the blocks the file will hold,
  // rebuilt by the decomposition's own reconstruction (fp16 factors).
  std::vector<float> dense(size_t(t.rows) * t.cols, 0.0f);
  for (const auto& b : blocks) stk::host::bitstack_block_accumulate(b, t.rows, t.cols, dense.data());
  float worst = 0, top = 0;
  for (size_t k = 0; k < dense.size(); ++k) {
    worst = std::max(worst, std::fabs(dense[k] - student.tensors[w1].data[k]));
    top = std::max(top, std::fabs(dense[k]));
  }
  EXPECT_LT(worst, 2e-3f * top);
  run(1, &again, &student2);
  for (size_t b = 0; b < blocks.size(); ++b) EXPECT_EQ(again[b].u, blocks[b].u);
}

}  // namespace

namespace {

// A fixed low-bit tensor trained beside the blocks (the BitStack packer's
// embedding): its codes move, every weight the student computes with stays a
// point of the tensor's own group grid, and the held-back KL falls.
TEST(Distill, BitStackTrainsAFixedTensorsCodesOnTheirGrid) {
  if (stk::test::kEmulationSizes) GTEST_SKIP() << "packer-side training, seconds on the host and many minutes under qemu";
  const HostModel teacher = stk::host::import_llama2c(stk::test::data_path("stories260K.bin"));
  const auto seqs = first_stories(teacher, 16);
  size_t w1 = 0, emb = 0;
  for (size_t i = 0; i < teacher.tensors.size(); ++i) {
    if (teacher.tensors[i].role == TensorRole::W1 && teacher.tensors[i].layer == 1) w1 = i;
    if (teacher.tensors[i].role == TensorRole::TokenEmbedding) emb = i;
  }
  const HostTensor& t = teacher.tensors[w1];
  const HostTensor& e = teacher.tensors[emb];
  stk::host::FormatSpec q4k;
  q4k.format = stk::WeightFormat::Q4K;
  q4k.group = stk::host::kDefaultLowbitKGroup;
  const stk::host::LowbitTensor start = stk::host::lowbit_quantize_rtn(e.data.data(), e.rows, e.cols, q4k);
  auto run = [&](uint32_t threads, stk::host::LowbitTensor* codes, HostModel* student) {
    std::vector<stk::host::BitStackBlock> blocks = stk::host::bitstack_decompose(t.data.data(), t.rows, t.cols, 2, 1);
    *codes = start;
    *student = teacher;
    std::vector<stk::host::StackedTensor> st(1);
    st[0].tensor = w1;
    st[0].blocks = &blocks;
    std::vector<stk::host::GridTensor> grid{{emb, codes}};
    stk::host::DistillOptions opt;
    opt.max_epochs = 2;
    opt.stories_per_step = 1;  // steps enough for codes to cross half a grid step
    opt.lr = 0.02;
    opt.threads = threads;
    return stk::host::distill_bitstack(teacher, *student, st, grid, {0, 0}, seqs, opt);
  };
  stk::host::LowbitTensor codes, again;
  HostModel student, student2;
  const stk::host::DistillReport rep = run(2, &codes, &student);
  EXPECT_LT(rep.kl_after, rep.kl_before);
  size_t moved = 0;
  for (size_t k = 0; k < codes.codes.size(); ++k) moved += codes.codes[k] != start.codes[k];
  EXPECT_GT(moved, 16u);
  EXPECT_EQ(codes.d, start.d);  // the grid itself is not trained
  EXPECT_EQ(codes.m, start.m);
  const uint32_t gpr = codes.groups_per_row();
  for (uint32_t r = 0; r < e.rows; ++r)
    for (uint32_t c = 0; c < e.cols; ++c) {
      const size_t k = size_t(r) * e.cols + c, g = size_t(r) * gpr + c / codes.group;
      ASSERT_EQ(student.tensors[emb].data[k], stk::host::lowbit_decode_value(codes.format, codes.codes[k], codes.d[g], codes.m[g]))
          << r << "," << c;
    }
  run(1, &again, &student2);
  EXPECT_EQ(again.codes, codes.codes);
}

}  // namespace

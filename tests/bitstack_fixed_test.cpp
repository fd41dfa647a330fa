// The fixed tensors of a BitStack pack (tools/bitstack_pack.h, step 4): with
// calibration, a low-bit embedding/classifier is fitted to the classifier's
// output, so on the calibration inputs of the classifier its output error is
// below that of the plain rounding the pack uses without calibration.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/weights.h"
#include "tests/bitstack_fixture.h"
#include "tests/test_support.h"
#include "tools/bitstack_pack.h"
#include "tools/calib.h"
#include "tools/gptq.h"
#include "tools/pack.h"
#include "tools/quantize.h"

namespace stk::test {
namespace {

std::vector<float> decoded(WeightFormat f, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& data,
                           const uint32_t params[4]) {
  WeightView v{f, rows, cols, data.data(), data.size(), {params[0], params[1], params[2], params[3]}};
  std::vector<float> out(size_t(rows) * cols);
  for (uint32_t r = 0; r < rows; ++r) weight_dequantize_row(v, r, out.data() + size_t(r) * cols);
  return out;
}

TEST(BitStackFixed, CalibratedEmbeddingFitsTheClassifierOutput) {
  if (kEmulationSizes) GTEST_SKIP() << "packer-side calibration, seconds on the host and many minutes under qemu";
  const host::HostModel hm = host::import_llama2c(data_path("stories260K.bin"));
  ASSERT_TRUE(hm.config.shared_classifier);
  auto tok = host::tokenizer_section_from_llama2c(host::read_file(data_path("tok512.bin")), hm.config.vocab_size,
                                                  "tok512.bin");
  const std::vector<std::string> calib = host::story_range(dev_stories(), 0, 8);
  host::BitStackPackOptions o;
  o.iters = 1;  // the blocks do not matter here
  o.output_fit = false;
  o.order = "uniform";
  o.calib = calib;
  o.fixed_format = WeightFormat::Q3K;
  const host::PackedModel pm = host::pack_bitstack(hm, tok, o);
  const host::HostTensor* emb = hm.find(TensorRole::TokenEmbedding, kNoLayer);
  const host::PackedTensor* packed = nullptr;
  for (const host::PackedTensor& t : pm.tensors)
    if (t.role == TensorRole::TokenEmbedding) packed = &t;
  ASSERT_NE(packed, nullptr);
  ASSERT_EQ(packed->format, WeightFormat::Q3K);

  // The plain rounding of the same format, and the classifier's input Hessian.
  uint32_t rtn_params[4] = {0, 0, 0, 0};
  const std::vector<uint8_t> rtn = host::encode_weights(emb->data.data(), emb->rows, emb->cols, WeightFormat::Q3K, rtn_params);
  const host::HessianMap hs =
      host::collect_hessians(host::pack_uniform(hm, tok, WeightFormat::F32), calib, 2, {emb->name});
  const host::CalibHessian& H = hs.at(emb->name);
  ASSERT_GT(H.samples, 0u);
  const double e_fit = host::layer_output_error(
      emb->data.data(), decoded(WeightFormat::Q3K, emb->rows, emb->cols, packed->data, packed->params).data(),
      emb->rows, emb->cols, H.h);
  const double e_rtn = host::layer_output_error(
      emb->data.data(), decoded(WeightFormat::Q3K, emb->rows, emb->cols, rtn, rtn_params).data(), emb->rows,
      emb->cols, H.h);
  EXPECT_LT(e_fit, 0.9 * e_rtn) << "fitted " << e_fit << ", rounded " << e_rtn;
}

}  // namespace
}  // namespace stk::test

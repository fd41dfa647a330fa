#include "tools/pack.h"

#include <stdexcept>

#include "runtime/tokenizer.h"
#include "tools/quantize.h"

namespace stk::host {

std::vector<uint8_t> tokenizer_section_from_llama2c(const std::vector<uint8_t>& tok_bin, uint32_t vocab_size,
                                                    const std::string& origin) {
  char text[256] = {0};
  Message msg{text, sizeof text};
  size_t need = 0;
  if (tokenizer_build_section(tok_bin.data(), tok_bin.size(), vocab_size, nullptr, 0, &need, &msg) != Status::Ok) {
    throw std::runtime_error(origin + ": " + text);
  }
  std::vector<uint32_t> aligned((need + 3) / 4);  // the builder wants 4-byte alignment
  size_t got = 0;
  if (tokenizer_build_section(tok_bin.data(), tok_bin.size(), vocab_size, reinterpret_cast<uint8_t*>(aligned.data()),
                              aligned.size() * 4, &got, &msg) != Status::Ok) {
    throw std::runtime_error(origin + ": " + text);
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(aligned.data());
  return std::vector<uint8_t>(p, p + got);
}

PackedModel pack_uniform(const HostModel& model, std::vector<uint8_t> tokenizer_section, WeightFormat format) {
  PackedModel pm;
  pm.config = model.config;
  pm.tokenizer_section = std::move(tokenizer_section);
  for (const HostTensor& t : model.tensors) {
    PackedTensor p;
    p.name = t.name;
    p.role = t.role;
    p.layer = t.layer;
    p.rows = t.rows;
    p.cols = t.cols;
    p.format = t.rows == 1 ? WeightFormat::F32 : format;
    p.data = encode_weights(t.data.data(), t.rows, t.cols, p.format, p.params);
    pm.tensors.push_back(std::move(p));
  }
  return pm;
}

}  // namespace stk::host

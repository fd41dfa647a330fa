// stk pack: llama2.c checkpoint + tokenizer.bin -> .stk
#include <cstdio>

#include "runtime/tokenizer.h"
#include "runtime/weights.h"
#include "tools/commands.h"
#include "tools/llama2c_import.h"
#include "tools/quantize.h"
#include "tools/stk_writer.h"

namespace stk::cli {
namespace {

std::vector<uint8_t> build_tokenizer_section(const std::string& path, uint32_t vocab_size) {
  std::vector<uint8_t> bin = host::read_file(path);
  char text[256] = {0};
  Message msg{text, sizeof text};
  size_t need = 0;
  if (tokenizer_build_section(bin.data(), bin.size(), vocab_size, nullptr, 0, &need, &msg) != Status::Ok) {
    throw std::runtime_error(path + ": " + text);
  }
  std::vector<uint32_t> aligned((need + 3) / 4);  // the builder wants 4-byte alignment
  size_t got = 0;
  if (tokenizer_build_section(bin.data(), bin.size(), vocab_size, reinterpret_cast<uint8_t*>(aligned.data()),
                              aligned.size() * 4, &got, &msg) != Status::Ok) {
    throw std::runtime_error(path + ": " + text);
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(aligned.data());
  return std::vector<uint8_t>(p, p + got);
}

int run_pack(const Args& a) {
  if (a.positional.size() != 2) throw UsageError("expected IN and OUT");
  if (!a.has("--tokenizer")) throw UsageError("--tokenizer FILE is required (the llama2.c tokenizer.bin to embed)");
  const WeightFormat format = host::parse_weight_format(a.get("--format", "q8"));
  const std::string& in = a.positional[0];
  const std::string& out = a.positional[1];

  host::HostModel hm = host::import_llama2c(in);
  host::PackedModel pm;
  pm.config = hm.config;
  pm.tokenizer_section = build_tokenizer_section(a.get("--tokenizer"), hm.config.vocab_size);
  for (const host::HostTensor& t : hm.tensors) {
    host::PackedTensor p;
    p.name = t.name;
    p.role = t.role;
    p.layer = t.layer;
    p.rows = t.rows;
    p.cols = t.cols;
    // Norm weights are tiny and feed every activation: they stay f32.
    p.format = t.rows == 1 ? WeightFormat::F32 : format;
    p.data = host::encode_weights(t.data.data(), t.rows, t.cols, p.format, p.params);
    pm.tensors.push_back(std::move(p));
  }
  std::vector<uint8_t> bytes = host::serialize_stk(pm);
  host::write_file_atomic(out, bytes);
  std::fprintf(stderr, "packed %s (%s) -> %s: %zu tensors, format %s, %zu bytes\n", in.c_str(),
               hm.source_format.c_str(), out.c_str(), pm.tensors.size(), weight_format_name(format), bytes.size());
  return 0;
}

}  // namespace

const Command kPackCommand = {
    "pack",
    "IN OUT --tokenizer TOK [--format f32|q8]",
    "Pack a llama2.c checkpoint (legacy, export v1, or export v2 int8) into a self-contained .stk model.",
    {
        {"--tokenizer", "FILE", "llama2.c tokenizer.bin to embed (required)"},
        {"--format", "F", "weight format for matrices: f32 or q8 (default q8); norms stay f32"},
    },
    run_pack,
};

}  // namespace stk::cli

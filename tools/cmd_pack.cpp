// stk pack: llama2.c checkpoint + tokenizer.bin -> .stk
#include <cstdio>

#include "runtime/weights.h"
#include "tools/commands.h"
#include "tools/llama2c_import.h"
#include "tools/pack.h"
#include "tools/quantize.h"
#include "tools/stk_writer.h"

namespace stk::cli {
namespace {

int run_pack(const Args& a) {
  if (a.positional.size() != 2) throw UsageError("expected IN and OUT");
  if (!a.has("--tokenizer")) throw UsageError("--tokenizer FILE is required (the llama2.c tokenizer.bin to embed)");
  const WeightFormat format = host::parse_weight_format(a.get("--format", "q8"));
  const std::string& in = a.positional[0];
  const std::string& out = a.positional[1];

  host::HostModel hm = host::import_llama2c(in);
  const std::string tok_path = a.get("--tokenizer");
  host::PackedModel pm = host::pack_uniform(
      hm, host::tokenizer_section_from_llama2c(host::read_file(tok_path), hm.config.vocab_size, tok_path), format);
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

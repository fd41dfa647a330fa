// stories260K packed as BitStack, shared by the BitStack test binaries (and
// their processes, through cached_pack).
#pragma once
#include <string>
#include <vector>

#include "tests/test_support.h"
#include "tools/bitstack_pack.h"
#include "tools/calib.h"
#include "tools/story_ppl.h"

namespace stk::test {

constexpr uint32_t kIters = 6;

inline std::vector<std::string> dev_stories() {
  return host::split_stories(read_text(std::string(STK_SHARED_DATA_DIR) + "/tinystories_valid_dev.txt"));
}

// stories260K as BitStack, calibrated on the first 24 dev stories.
inline const ModelImage& bitstack_image() {
  static ModelImage img = to_image(cached_pack("stories260K-bitstack", [] {
    host::HostModel hm = host::import_llama2c(data_path("stories260K.bin"));
    auto tok = host::tokenizer_section_from_llama2c(host::read_file(data_path("tok512.bin")), hm.config.vocab_size,
                                                    "tok512.bin");
    host::BitStackPackOptions o;
    o.iters = kIters;
    o.calib = host::story_range(dev_stories(), 0, 24);  // 24 keeps the pack short
    return host::serialize_stk(host::pack_bitstack(hm, tok, o));
  }));
  return img;
}

}  // namespace stk::test

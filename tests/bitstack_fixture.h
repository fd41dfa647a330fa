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

constexpr uint32_t kIters = 8;

inline std::vector<std::string> dev_stories() {
  return host::split_stories(read_text(std::string(STK_SHARED_DATA_DIR) + "/tinystories_valid_dev.txt"));
}

// stories260K as BitStack, calibrated on the first 24 dev stories.
//
// Emulation (tests/test_support.h): the same calibration stories, but the
// pack's two costly refinements are off. The measured load order scores the
// calibration text once per tensor (36 passes, about a minute per story
// under qemu) and the output-error block fit takes 20+ s on the host (half an
// hour under qemu); "gain" orders blocks by the same calibration activations
// (the output-error drop they predict) and the blocks are fitted to the
// weights. Both are the packer's host-side arithmetic, which the host run
// checks; the runtime side (block pool, budgets, BitStack kernels) is the
// same for any pack.
inline const ModelImage& bitstack_image() {
  static ModelImage img = to_image(cached_pack("stories260K-bitstack", [] {
    host::HostModel hm = host::import_llama2c(data_path("stories260K.bin"));
    auto tok = host::tokenizer_section_from_llama2c(host::read_file(data_path("tok512.bin")), hm.config.vocab_size,
                                                    "tok512.bin");
    host::BitStackPackOptions o;
    o.iters = kIters;
    o.calib = host::story_range(dev_stories(), 0, 24);  // 24 keeps the pack short
    if (kEmulationSizes) {
      o.order = "gain";
      o.output_fit = false;
    }
    return host::serialize_stk(host::pack_bitstack(hm, tok, o));
  }));
  return img;
}

}  // namespace stk::test

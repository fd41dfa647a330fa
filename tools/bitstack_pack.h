// `stk pack --format bitstack`: a float model becomes a BitStack model whose
// linear layers are residual sign blocks in one global load order.
//
// 1. Activation scaling (with calibration stories): per input channel j of a
//    linear layer, d_j = mean x_j^2 over the calibration activations (seen by
//    running stackrt itself), s_j = d_j^(alpha/2) normalised to mean 1. W's
//    columns are multiplied by s before decomposing; 1/s is folded into the
//    RMSNorm weight for wq/wk/wv (attn_norm) and w1/w3 (ffn_norm), and kept as
//    the tensor's explicit input scale for wo and w2.
// 2. Each linear layer: `iters` blocks (tools/bitstack_decompose.h).
// 3. Load order: every tensor's first block (so the minimum prefix is a valid
//    model), then greedily the block with the largest estimated gain per byte.
//    Default ("measured"): calibration-NLL increase when that one tensor is cut
//    to its first block, spread over its blocks in proportion to the drop in
//    E||ΔW x||^2 = sum_ij (R_before^2 - R_after^2)_ij * d_j / s_j^2 (per-channel
//    independence approximation). "gain": that output-error drop alone.
//    "nll": the BitStack paper's measure, the calibration-NLL drop of each
//    tensor's next block given the blocks before it, in rounds (about
//    4 x (blocks per tensor) x (tensors) calibration runs against
//    1 + (tensors): a stories260K pack takes 320 s against 47 s). On
//    stories260K it orders only 1-2% better than "measured" (README), which
//    is why "measured" is the default.
//    Each tensor's blocks stay in their own order.
// 4. Embedding/classifier use `fixed_format` (Q4K by default), norms f32.
//    With calibration, a low-bit one is fitted by GPTQ to the classifier's
//    output error (its input's Hessian, from the same calibration run; an
//    embedding not shared with the classifier stays plainly rounded), as
//    the calibrated low-bit pack does, and distillation trains its codes on
//    their group grid along with the blocks. On stories260K (depth 2, Q3K,
//    192 samples; README) that gave 14.46 against 15.75 ppl at the Q2
//    model's bytes, and 6.80 against 6.89 at the Q4 model's.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/format.h"
#include "tools/host_model.h"
#include "tools/stk_writer.h"

namespace stk::host {

struct BitStackPackOptions {
  uint32_t iters = 8;
  uint32_t rank = 0;     // 0 = bitstack_default_rank per matrix
  double alpha = 1.0;    // activation-scale exponent; 0 = no scaling
  std::vector<std::string> calib;  // calibration stories; empty = no scaling, unweighted order
  uint32_t threads = 1;
  // Q4K: at the budgets where BitStack matters its 14 KB saving over Q8 on
  // stories260K buys ~8 more blocks, for +1 % perplexity at the full budget.
  WeightFormat fixed_format = WeightFormat::Q4K;
  // "measured" (calibration NLL sensitivity, see bitstack_pack.cpp), "nll"
  // (the paper's measure, slow), "gain" (the proxy above) or "uniform"
  // (block i of every tensor before block i+1).
  std::string order = "measured";
  // With calibration: fit each block to the layer's output error (signs by
  // error feedback, factors by least squares; tools/bitstack_decompose.h)
  // rather than to the weights.
  bool output_fit = true;
  uint32_t fit_rounds = 3;
  // With calibration and output fitting: the first `depth` blocks of every
  // matrix are fitted together as one depth-bit quantizer (step 5 of
  // BitStackHessian), which serves the budgets where matrices hold about
  // that many blocks or more; 1 = every block greedy, best for the smallest
  // budgets. Default 3: on stories260K (README) it is far better than
  // greedy blocks from the Q3 models' bytes up (Q4K's: 6.52 against 7.24
  // ppl with distillation), within about 10% of them at the Q2 models'
  // bytes, and worse below that, at budgets no depth makes usable (the
  // minimum: ppl 1515 against 232). Depth 2 is best around the Q2 models'
  // bytes (23.47 at Q2's; 17.54 with 192 distillation samples), depth 4 from the Q4 models' bytes up.
  uint32_t depth = 3;
  // With calibration: train the blocks' factors, the codes of a low-bit
  // embedding/classifier and the norms end to end over random budgets for
  // at most this many epochs (0 = off; tools/bitstack_distill.h).
  uint32_t distill_epochs = 0;
  // Stories sampled from the f32 model that distillation trains on besides
  // the calibration stories (tools/teacher_samples.h).
  uint32_t distill_samples = 0;
  std::function<void(const std::string&)> log;
};

PackedModel pack_bitstack(const HostModel& model, std::vector<uint8_t> tokenizer_section,
                          const BitStackPackOptions& options);

}  // namespace stk::host

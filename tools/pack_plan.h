// Per-tensor format choice for `stk pack`: --format, --layer PATTERN=FORMAT
// rules, --bpw B budget allocation, and round-to-nearest or calibrated
// (GPTQ on stackrt's own activations) quantization of every matrix.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tools/gptq.h"
#include "tools/host_model.h"
#include "tools/lowbit_quant.h"
#include "tools/stk_writer.h"

namespace stk::host {

struct LayerRule {
  std::string pattern;  // glob over tensor names as `stk info` prints them
  FormatSpec spec;
};
// "PATTERN=FORMAT"; throws std::invalid_argument with a message naming the rule.
LayerRule parse_layer_rule(const std::string& text);

struct PackPlanOptions {
  FormatSpec base;                 // every matrix without a matching rule
  std::vector<LayerRule> rules;    // applied in order; the last match wins
  double bpw = 0;                  // > 0: choose formats of rule-free matrices to fit this average
  std::vector<std::string> calib;  // calibration stories; empty = round-to-nearest
  uint32_t threads = 1;
  GptqOptions gptq;
  size_t probe_stories = 16;       // calibration stories --bpw measures KL on
  // With calibration: whole-model KL evaluations of the joint search that
  // refines --bpw's greedy allocation (0 = greedy only).
  uint32_t joint_evals = 0;
  // Formats --bpw chooses from (empty: default_bpw_candidates(bpw)).
  std::vector<FormatSpec> candidates;
  // With calibration: afterwards train end to end towards the f32 model
  // (tools/distill.h) for at most this many epochs (0 = off): the norm
  // vectors of a quantized model; the kept weights and the norms of a pruned
  // one.
  uint32_t distill_epochs = 0;
  // Stories sampled from the f32 model that distillation trains on besides
  // the calibration stories (tools/teacher_samples.h).
  uint32_t distill_samples = 0;
  std::function<void(const std::string&)> log;  // progress lines (optional)
};

// --bpw's default candidates: the formats of kBpwFamily whose own rate lies
// in [B - kBpwBelow, B + kBpwAbove]. The greedy allocation adds losses
// measured one tensor at a time; that holds for small steps but badly
// underestimates many tensors taken far below the average at once, so a
// tensor may go at most half a bit below the target and up to a bit above
// (on stories260K at 4.0 bpw: this window +15.0 %, all 17 widths +114 %,
// docs/lowbit_formats.md).
extern const char* const kBpwFamily;  // comma-separated
constexpr double kBpwBelow = 0.5, kBpwAbove = 1.0;
std::vector<FormatSpec> default_bpw_candidates(double bpw);
// "q8,q4k,q3g64" -> specs; throws std::invalid_argument on a bad name.
std::vector<FormatSpec> parse_format_list(const std::string& text);

// True for tensors that are matrices (everything except the norm vectors).
inline bool is_matrix(const HostTensor& t) { return t.rows > 1; }

// Format of each tensor of `model` after rules (norms: f32). Throws when a
// rule matches no matrix.
std::vector<FormatSpec> apply_rules(const HostModel& model, const PackPlanOptions& o);

PackedModel pack_with_plan(const HostModel& model, std::vector<uint8_t> tokenizer_section, const PackPlanOptions& o);

// Bits per weight over all matrices (scales and padding included).
double linear_bpw(const PackedModel& m);

}  // namespace stk::host

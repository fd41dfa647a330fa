// End-to-end distillation of a compressed model towards its dense original
// (host tool code). Layer-wise methods (GPTQ, SparseGPT) each minimise one
// matrix's output error; the errors then compound through the layers. This
// step trains chosen entries of the compressed model so that its next-token
// distributions match the dense model's on the calibration text: the loss is
// the mean KL(dense || compressed) over every position, its gradient comes
// from an exact float forward and backward pass of the Llama block written
// here (the runtime's forward, in the same order of operations), and Adam
// updates only the entries a mask marks trainable (a pruned weight stays
// zero).
//
// Overfitting guard: the last eighth of the stories is held back; training
// keeps the weights of the epoch with the lowest held-back KL (see
// DistillOptions::lr for what happens after an epoch that is no better).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tools/host_model.h"
#include "tools/memory_model.h"
#include "tools/stk_writer.h"

namespace stk::host {

// Adds to *grads (one vector per tensor, in model.tensors order; sized here
// when empty) the gradient of the summed KL over the positions of `tokens`
// with respect to every entry of `student`; returns that sum.
// `teacher_logp` holds the teacher's log-probabilities, tokens x vocab.
double kl_loss_and_gradients(const HostModel& student, const std::vector<int32_t>& tokens,
                             const std::vector<float>& teacher_logp, std::vector<std::vector<float>>* grads);

// The stories tokenized with `model`'s tokenizer (BOS first), each cut to the
// context length; empty ones are left out.
std::vector<std::vector<int32_t>> tokenize_stories(const PackedModel& model, const std::vector<std::string>& stories);
std::vector<std::vector<int32_t>> tokenize_stories(const MemoryModel& model, const std::vector<std::string>& stories);

// The floats a packed tensor stands for, decoded by the runtime's own
// weight_dequantize_row. BitStack tensors are refused.
std::vector<float> dequantized_tensor(const PackedTensor& p);
// Every tensor of `packed` so decoded (names, roles and shapes as in it).
HostModel dequantized_model(const PackedModel& packed);

// The summed KL over the positions of `tokens`, without gradients.
double kl_loss(const HostModel& student, const std::vector<int32_t>& tokens, const std::vector<float>& teacher_logp);

// Runs fn(i) for i in [0, n) on up to `threads` threads.
void parallel_for(size_t n, uint32_t threads, const std::function<void(size_t)>& fn);

// One Adam step (beta 0.9, 0.999) on n entries: w -= lr * m1^ / (sqrt(m2^) + eps),
// with the moment estimates m1, m2 updated from gradient g; t is the 1-based
// step count since the moments were last zeroed. Entries with mask[k] == 0
// (mask may be null) are left alone.
void adam_update(float* w, const float* g, const uint8_t* mask, size_t n, float lr, uint64_t t, float* m1, float* m2);

// Log-probabilities of every position (tokens x vocab) under `model`.
std::vector<float> model_log_probs(const HostModel& model, const std::vector<int32_t>& tokens);

struct DistillOptions {
  uint32_t max_epochs = 8;
  // Adam step, relative to each tensor's RMS entry. An epoch that does not
  // lower the held-back KL is undone and the step divided by 3, at most
  // step_cuts times: the right step differs between, e.g., 4-bit codes (a
  // small grid step) and 2-bit ones, and this finds it on held-back text.
  double lr = 1e-2;
  uint32_t step_cuts = 3;
  uint32_t stories_per_step = 4;
  uint32_t threads = 1;
  std::function<void(const std::string&)> log;
};

struct DistillReport {
  double kl_before = 0, kl_after = 0;  // held-back stories
  uint32_t epochs_run = 0, best_epoch = 0;
};

// Maps a tensor's trained (latent) values to the values the model computes
// with, e.g. rounding to a quantization grid; the gradient passes through it
// unchanged (straight-through estimator).
using Projection = std::function<void(const std::vector<float>& latent, std::vector<float>* effective)>;

// Trains `student` in place. trainable[i] is empty (tensor i frozen) or has
// one byte per entry of tensor i (1 = trained). project is empty or has one
// entry per tensor (an empty function: no projection). On return the student
// holds the effective values of the best epoch. Sequences are tokenized
// stories already cut to the context length.
DistillReport distill(const HostModel& teacher, HostModel& student,
                      const std::vector<std::vector<uint8_t>>& trainable,
                      const std::vector<std::vector<int32_t>>& sequences, const DistillOptions& opt,
                      const std::vector<Projection>& project = {});

}  // namespace stk::host

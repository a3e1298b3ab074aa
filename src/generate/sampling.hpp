// Sampling parameters of the generation engine and the randomness of every draw: a pure function of
// (seed, prompt, sample, position) through Philox. The draw itself is kernels::sample_rows.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "config/rl.hpp"
#include "kernels/sampling.hpp"

namespace r1 {

struct SamplingParams {
  float temperature = 1.0f;           // 0: greedy (argmax, lowest id on ties)
  float top_p = 1.0f;                 // nucleus: smallest set of most likely tokens with mass >= top_p; 1 = off
  std::int64_t top_k = 0;             // keep the k most likely tokens before top-p; 0 = off
  std::int64_t max_new_tokens = 256;  // also bounded by the model's max_seq_len - prompt length
  std::vector<std::int32_t> stop_ids; // e.g. PromptFormat::stop_ids(): the end token, EOS, </answer>
  std::uint64_t seed = 0;
  // Draw only ids below this (the tokenizer's vocabulary when the model's is padded beyond it); 0: all.
  // Log-probs are then taken over these ids.
  std::int64_t vocab_limit = 0;
  // Decode steps that Model::decodes_on_device run as CUDA graphs (one launch per step); false: every
  // kernel launched one by one (the same kernels, so the same completions).
  bool cuda_graphs = true;
  // Keep the routing of every token fed through the model's MoE layers (Completion::experts): GRPO's
  // routing replay and its rollout/learner routing comparison.
  bool record_experts = false;
  Batching batching = Batching::continuous;  // how the engine fills its batch ([sampling] batching)
  // Continuous batching's KV cache ([sampling] kv_block_size, kv_cache_tokens): paged in blocks of this many
  // tokens (0: contiguous, every slot sized for the longest sequence), from a pool of at most this many
  // tokens per layer (0: auto -- from free device memory on the GPU, kDefaultCpuKvTokens on the CPU).
  std::int64_t kv_block_size = 16;
  std::int64_t kv_cache_tokens = 0;
  // Continuous batching ([sampling] prefill_chunk): new prompts are prefilled in passes of at most this many
  // tokens, each run as rows of a decode pass over the prompts' cache rows (a row attends to the rows before
  // it): over the paged cache in the same pass as the running sequences' decode step, over the contiguous one
  // in passes alternating with decode steps, so that long prompts never stall decode; 0: the prompts of an
  // admission in one pass of the training forward.
  std::int64_t prefill_chunk = 0;
  // New tokens allowed per sequence (prompt-major: prompt p's sample s at p samples_per_prompt + s), each
  // also bounded by max_new_tokens and the model's context; empty: max_new_tokens for every sequence. For
  // the rollout benchmark's long-tailed lengths.
  std::vector<std::int64_t> sequence_limits;
};

// Throws a user error naming the field that is out of range.
void validate(const SamplingParams& p);

// A uniform draw in [0, 1) (53 bits) for token `position` (0 = first generated) of sample `sample` of the
// prompt with global index `prompt`: one Philox block, so batching and rank layout never change it.
double sampling_uniform(std::uint64_t seed, std::uint64_t prompt, std::uint32_t sample, std::uint32_t position);

using kernels::SampledToken;

// kernels::cpu::sample_row on one row (kernels/sampling.hpp defines the draw): softmax(logits / T)
// restricted to the top-k, then to the top-p nucleus of the renormalised top-k, inverted at `u` in id order.
// The log-prob and entropy are those of the whole tempered softmax: top-k/top-p only choose the candidates.
SampledToken sample_token(std::span<const float> logits, const SamplingParams& p, double u,
                          std::vector<std::int32_t>& scratch);

// The kernel options of these parameters.
kernels::SampleOptions sample_options(const SamplingParams& p);

}  // namespace r1
